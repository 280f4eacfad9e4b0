"""The HL7 edge's durable inbox: every message received, stored before its ACK (messages to the RIS
go through the common outbox, `schema.outbox`)."""

from sqlalchemy import Column, DateTime, Index, LargeBinary, String, Table, Text

from appliance.db.schema.base import BigKey, metadata

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
