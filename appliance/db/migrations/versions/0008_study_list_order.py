"""index on the study list's order

The console's study list (H5) shows studies newest first by study date, study time and key, one
page after another by position (keyset). Without an index in that order, a search with no date
range (a modality, or no criterion at all) sorted every study of the archive: about 150 ms with
100,000 studies on SQLite, and a query planner free to choose a full scan. With it, a page reads
its 50 rows along the index and the next page seeks to its position.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10 09:00:00
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_study_date_time_id", "study", ["study_date", "study_time", "id"])


def downgrade() -> None:
    op.drop_index("ix_study_date_time_id", table_name="study")
