"""searches of the remote archives asked from the console (priors)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-10 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BigKey = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "remote_query",
        sa.Column("id", BigKey, nullable=False),
        sa.Column("peer_ae_title", sa.String(16), nullable=False),
        sa.Column("keys", sa.Text, nullable=False, server_default="{}"),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("answers", sa.Text, nullable=False, server_default="[]"),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.Column("requested_by", sa.String(64), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_remote_query"),
    )
    op.create_index("ix_remote_query_state_id", "remote_query", ["state", "id"])


def downgrade() -> None:
    op.drop_index("ix_remote_query_state_id", table_name="remote_query")
    op.drop_table("remote_query")
