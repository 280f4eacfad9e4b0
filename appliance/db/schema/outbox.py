"""The outbox: everything that must be delivered later, with retries and backoff (HL7 messages to the
RIS, storage commitment reports, forwarding). See `appliance.outbox`."""

from sqlalchemy import Column, DateTime, Index, Integer, LargeBinary, String, Table, Text

from appliance.db.schema.base import BigKey, metadata

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigKey, primary_key=True),
    # Who delivers it and to whom: "hl7-ris", "storage-commitment:<AE>", "forward:<AE>"; messages of one
    # channel go out in order, one at a time.
    Column("channel", String(80), nullable=False),
    # What caused it (e.g. "change:1234"): the same cause never makes a second message.
    Column("cause", String(128), nullable=False),
    Column("kind", String(40), nullable=False),  # ORM^O01, N-EVENT-REPORT, ...
    Column("payload", LargeBinary, nullable=False),
    Column("summary", String(200), nullable=False, server_default=""),  # for people; never patient data
    Column("status", String(16), nullable=False),  # pending, delivered, parked
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("refusals", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("last_error", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),  # delivered or parked
    Index("uq_outbox_channel_cause", "channel", "cause", unique=True),
    Index("ix_outbox_channel_status_id", "channel", "status", "id"),
)
