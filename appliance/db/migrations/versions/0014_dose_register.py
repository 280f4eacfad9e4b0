"""the dose register: Radiation Dose SRs read from the change feed, one row per irradiation event

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

BigKey = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "dose_report",
        sa.Column("id", BigKey, nullable=False),
        sa.Column("sop_instance_uid", sa.String(64), nullable=False),
        sa.Column("study_instance_uid", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("problem", sa.String(32), nullable=False, server_default=""),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("procedure", sa.String(16), nullable=False, server_default=""),
        sa.Column("modality", sa.String(16), nullable=False, server_default=""),
        sa.Column("exam_date", sa.String(8), nullable=False, server_default=""),
        sa.Column("study_description", sa.String(64), nullable=False, server_default=""),
        sa.Column("manufacturer", sa.String(64), nullable=False, server_default=""),
        sa.Column("model", sa.String(64), nullable=False, server_default=""),
        sa.Column("station_name", sa.String(64), nullable=False, server_default=""),
        sa.Column("patient_age_years", sa.Float, nullable=True),
        sa.Column("patient_sex", sa.String(16), nullable=False, server_default=""),
        sa.Column("patient_weight_kg", sa.Float, nullable=True),
        sa.Column("patient_height_cm", sa.Float, nullable=True),
        sa.Column("events", sa.Integer, nullable=False, server_default="0"),
        sa.Column("dlp_total_mgy_cm", sa.Float, nullable=True),
        sa.Column("dap_total_gy_cm2", sa.Float, nullable=True),
        sa.Column("air_kerma_total_mgy", sa.Float, nullable=True),
        sa.Column("agd_total_mgy", sa.Float, nullable=True),
        sa.Column("change_id", sa.BigInteger, nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dose_report"),
        sa.UniqueConstraint("sop_instance_uid", name="uq_dose_report_sop_instance_uid"),
    )
    op.create_index("ix_dose_report_study_instance_uid", "dose_report", ["study_instance_uid"])
    op.create_index("ix_dose_report_exam_date", "dose_report", ["exam_date"])
    op.create_table(
        "dose_event",
        sa.Column("id", BigKey, nullable=False),
        sa.Column("report_pk", BigKey, nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("event_uid", sa.String(64), nullable=False, server_default=""),
        sa.Column("protocol", sa.String(64), nullable=False, server_default=""),
        sa.Column("target_region", sa.String(64), nullable=False, server_default=""),
        sa.Column("acquisition_type", sa.String(64), nullable=False, server_default=""),
        sa.Column("ctdi_vol_mgy", sa.Float, nullable=True),
        sa.Column("dlp_mgy_cm", sa.Float, nullable=True),
        sa.Column("phantom_cm", sa.Integer, nullable=True),
        sa.Column("scan_length_mm", sa.Float, nullable=True),
        sa.Column("dap_gy_cm2", sa.Float, nullable=True),
        sa.Column("air_kerma_mgy", sa.Float, nullable=True),
        sa.Column("agd_mgy", sa.Float, nullable=True),
        sa.Column("entrance_dose_mgy", sa.Float, nullable=True),
        sa.Column("compression_thickness_mm", sa.Float, nullable=True),
        sa.Column("view", sa.String(64), nullable=False, server_default=""),
        sa.Column("laterality", sa.String(16), nullable=False, server_default=""),
        sa.ForeignKeyConstraint(
            ["report_pk"], ["dose_report.id"], name="fk_dose_event_report_pk_dose_report", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_dose_event"),
    )
    op.create_index("ix_dose_event_report_pk", "dose_event", ["report_pk"])


def downgrade() -> None:
    op.drop_table("dose_event")
    op.drop_table("dose_report")
