"""The HL7 edge's durable queues: every message received (inbox, stored before its ACK) and every
message to send to the RIS (outbox, removed from the queue only on the RIS's AA/CA)."""

from sqlalchemy import Column, DateTime, Index, Integer, LargeBinary, String, Table, Text

from appliance.db.metadata import BigKey, metadata

hl7_inbox = Table(
    "hl7_inbox",
    metadata,
    Column("id", BigKey, primary_key=True),
    Column("sender", String(200), nullable=False),  # MSH-3|MSH-4 as sent
    Column("control_id", String(64), nullable=False),  # MSH-10
    Column("message_type", String(32), nullable=False),  # MSH-9, e.g. ADT^A28^ADT_A05
    Column("message", LargeBinary, nullable=False),  # the bytes as received
    # received (stored, not yet applied), applied (AA), refused (AE/AR), failed (AE, internal error)
    Column("status", String(16), nullable=False, index=True),
    Column("acknowledgement", LargeBinary, nullable=True),  # the ACK sent, re-sent to duplicates
    Column("detail", Text, nullable=False, server_default=""),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=True),
    Index("uq_hl7_inbox_sender_control_id", "sender", "control_id", unique=True),
)

hl7_outbox = Table(
    "hl7_outbox",
    metadata,
    Column("id", BigKey, primary_key=True),
    Column("workflow_event_id", BigKey, nullable=True, unique=True),
    Column("control_id", String(64), nullable=False),
    Column("message_type", String(32), nullable=False),
    Column("message", LargeBinary, nullable=False),  # encoded in the RIS's character set
    Column("status", String(16), nullable=False, index=True),  # pending, sent
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("last_error", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
)
