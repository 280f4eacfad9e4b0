"""The box's health as the monitor last saw it (H1-H3, H5): the current state of each thing watched,
every change of state (which drives the alert mails and the history pages), and measures over time
for the dashboard's plots. Written only by `appliance-monitor`; read by the console, `appliance
health` and the quality-control report. See `appliance.monitor`."""

from sqlalchemy import Column, DateTime, Float, Index, String, Table, Text

from appliance.db.schema.base import BigKey, metadata

# One row per (source, subject): the raid source's "md0", the smart source's "sda", "ups"'s "eaton".
health_state = Table(
    "health_state",
    metadata,
    Column("source", String(32), primary_key=True),
    Column("subject", String(128), primary_key=True),
    Column("severity", String(16), nullable=False),  # ok, warning, critical, absent (monitor.Severity)
    Column("message", Text, nullable=False),  # for people, French, never patient data
    Column("detail", Text, nullable=False, server_default=""),  # for the contractor: numbers, devices
    Column("since", DateTime(timezone=True), nullable=False),  # when it entered this severity
    Column("checked_at", DateTime(timezone=True), nullable=False),
)

# Each change of severity of a (source, subject), oldest first; `alerted_at` once a mail told people.
health_change = Table(
    "health_change",
    metadata,
    Column("id", BigKey, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("source", String(32), nullable=False),
    Column("subject", String(128), nullable=False),
    Column("previous", String(16), nullable=False, server_default=""),  # "" the first time it is seen
    Column("severity", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    Column("alerted_at", DateTime(timezone=True), nullable=True),
    Index("ix_health_change_at", "at"),
    Index("ix_health_change_alerted_at", "alerted_at"),
)

# Numbers over time for the plots: "disk.data.used_bytes", "ups.eaton.charge", "raid.md0.sync_percent".
health_measure = Table(
    "health_measure",
    metadata,
    Column("id", BigKey, primary_key=True),
    Column("name", String(128), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("value", Float, nullable=False),
    Index("ix_health_measure_name_at", "name", "at"),
)
