"""The change feed: one append-only table of what happened (an instance stored, a procedure started
or completed, a study's images available), read by every background consumer after its own cursor
(see `appliance.archive.changes`)."""

from sqlalchemy import BigInteger, Column, DateTime, Index, String, Table

from appliance.db.schema.base import UID, BigKey, metadata

change = Table(
    "change",
    metadata,
    Column("id", BigKey, primary_key=True),
    # instance-stored, procedure-in-progress, procedure-completed, procedure-discontinued, images-available,
    # order-scheduled
    Column("kind", String(32), nullable=False),
    Column("study_instance_uid", UID, nullable=False),
    Column("series_instance_uid", UID, nullable=False, server_default=""),
    Column("sop_instance_uid", UID, nullable=False, server_default=""),
    Column("accession_number", String(16), nullable=False, server_default=""),
    # The scheduled procedure step a workflow change is about (no foreign key: the feed outlives steps).
    Column("scheduled_step_pk", BigInteger, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_change_kind_id", "kind", "id"),
    Index("ix_change_study_instance_uid", "study_instance_uid"),
)

change_cursor = Table(
    "change_cursor",
    metadata,
    Column("consumer", String(64), primary_key=True),
    Column("last_change_id", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
