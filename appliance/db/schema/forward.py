"""Searches of the remote archives asked from the console (priors): the web edge may not speak
DICOM, so a page writes the search here and the worker runs the C-FIND and writes the answers back
(see `appliance.forward.remote`). Rows are removed a day after they ended: answers name patients."""

from sqlalchemy import Column, DateTime, Index, String, Table, Text

from appliance.db.schema.base import BigKey, metadata

remote_query = Table(
    "remote_query",
    metadata,
    Column("id", BigKey, primary_key=True),
    Column("peer_ae_title", String(16), nullable=False),
    Column("keys", Text, nullable=False, server_default="{}"),  # JSON: DICOM keyword -> value
    Column("state", String(16), nullable=False),  # waiting, running, done, failed
    Column("answers", Text, nullable=False, server_default="[]"),  # JSON: one mapping per study
    Column("error", Text, nullable=False, server_default=""),
    Column("requested_by", String(64), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Index("ix_remote_query_state_id", "state", "id"),
)
