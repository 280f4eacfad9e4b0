"""Retention and storage tiers: legal hold and confirmed purges on the study, each instance's tier

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("study") as table:
        table.add_column(sa.Column("frozen_at", sa.DateTime(timezone=True), nullable=True))
        table.add_column(sa.Column("frozen_by", sa.String(64), nullable=False, server_default=""))
        table.add_column(sa.Column("frozen_reason", sa.Text, nullable=False, server_default=""))
        table.add_column(sa.Column("purge_requested_at", sa.DateTime(timezone=True), nullable=True))
        table.add_column(sa.Column("purge_requested_by", sa.String(64), nullable=False, server_default=""))
        table.add_column(sa.Column("purge_reason", sa.Text, nullable=False, server_default=""))
        table.add_column(sa.Column("purge_recorded_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("instance") as table:
        table.add_column(sa.Column("tier", sa.String(16), nullable=False, server_default="immediate"))
        table.add_column(sa.Column("location", sa.String(1024), nullable=False, server_default=""))
        table.add_column(sa.Column("moved_at", sa.DateTime(timezone=True), nullable=True))
        table.create_index("ix_instance_tier", ["tier"])


def downgrade() -> None:
    with op.batch_alter_table("instance") as table:
        table.drop_index("ix_instance_tier")
        for name in ("moved_at", "location", "tier"):
            table.drop_column(name)
    with op.batch_alter_table("study") as table:
        for name in (
            "purge_recorded_at",
            "purge_reason",
            "purge_requested_by",
            "purge_requested_at",
            "frozen_reason",
            "frozen_by",
            "frozen_at",
        ):
            table.drop_column(name)
