"""DICOMweb: each instance's DICOM JSON made at ingest, access tokens for tools (Weasis, scripts)

Instances archived before this revision have no metadata row: DICOMweb makes their JSON from the
header kept in `instance_header` when it serves them, and a reindex writes the rows.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BigKey = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "instance_metadata",
        sa.Column("instance_pk", BigKey, nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("pixel_data_vr", sa.String(2), nullable=False, server_default=""),
        sa.ForeignKeyConstraint(
            ["instance_pk"], ["instance.id"], name="fk_instance_metadata_instance_pk_instance", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("instance_pk", name="pk_instance_metadata"),
    )
    op.create_table(
        "access_token",
        sa.Column("id", BigKey, nullable=False),
        sa.Column("account_pk", BigKey, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("note", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_pk"], ["account.id"], name="fk_access_token_account_pk_account", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_access_token"),
        sa.UniqueConstraint("digest", name="uq_access_token_digest"),
    )
    op.create_index("ix_access_token_account_pk", "access_token", ["account_pk"])
    op.create_index("ix_access_token_expires_at", "access_token", ["expires_at"])


def downgrade() -> None:
    op.drop_table("access_token")
    op.drop_table("instance_metadata")
