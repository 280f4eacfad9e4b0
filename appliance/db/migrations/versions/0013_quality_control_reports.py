"""Quality control (Q1): the daily reports, kept for the archive's lifetime, and their sign-off

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

BigKey = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "qc_report",
        sa.Column("id", BigKey, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("produced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("facts", sa.Text, nullable=False),
        sa.Column("facts_sha256", sa.String(64), nullable=False),
        sa.Column("signed_by", sa.String(64), nullable=False, server_default=""),
        sa.Column("signed_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("signed_comment", sa.Text, nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_qc_report"),
        sa.UniqueConstraint("day", name="uq_qc_report_day"),
    )


def downgrade() -> None:
    op.drop_table("qc_report")
