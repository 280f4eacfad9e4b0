"""lossy copies in the deferred tier: each instance made lossy as it moved keeps its original's UID

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instance") as table:
        table.add_column(sa.Column("lossy_source_uid", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("instance") as table:
        table.drop_column("lossy_source_uid")
