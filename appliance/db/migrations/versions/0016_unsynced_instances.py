"""unsynced instances: those indexed by a commit whose flush is the file system's sync that follows it

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 06:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unsynced_instance",
        sa.Column("instance_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_pk"], ["instance.id"], name=op.f("fk_unsynced_instance_instance_pk_instance"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("instance_pk", name=op.f("pk_unsynced_instance")),
    )


def downgrade() -> None:
    op.drop_table("unsynced_instance")
