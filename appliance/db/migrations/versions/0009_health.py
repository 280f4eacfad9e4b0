"""the box's health: current state per thing watched, changes of state, measures for plots

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 09:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BigKey = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "health_state",
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "subject", name="pk_health_state"),
    )
    op.create_table(
        "health_change",
        sa.Column("id", BigKey, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("previous", sa.String(16), nullable=False, server_default=""),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("alerted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_health_change"),
    )
    op.create_index("ix_health_change_at", "health_change", ["at"])
    op.create_index("ix_health_change_alerted_at", "health_change", ["alerted_at"])
    op.create_table(
        "health_measure",
        sa.Column("id", BigKey, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_health_measure"),
    )
    op.create_index("ix_health_measure_name_at", "health_measure", ["name", "at"])


def downgrade() -> None:
    op.drop_table("health_measure")
    op.drop_table("health_change")
    op.drop_table("health_state")
