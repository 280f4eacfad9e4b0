"""The daily quality-control reports (Q1), one row per day, kept for the archive's lifetime: the facts
the report was made of (JSON, rendered as HTML or PDF on demand by `appliance.qc.render`), their
SHA-256 (mailed out of the box with the report, so a later edit is seen), and the responsible
radiologist's sign-off. Written by `appliance.qc`; never purged."""

from sqlalchemy import Column, Date, DateTime, String, Table, Text

from appliance.db.schema.base import BigKey, metadata

qc_report = Table(
    "qc_report",
    metadata,
    Column("id", BigKey, primary_key=True),
    Column("day", Date, nullable=False, unique=True),  # the practice's calendar day it reports on
    Column("produced_at", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False),  # ok, warning, failure (appliance.qc.report.Status)
    Column("facts", Text, nullable=False),  # JSON: every section's status, sentence, lines and numbers
    Column("facts_sha256", String(64), nullable=False),  # of `facts` as stored (UTF-8)
    Column("signed_by", String(64), nullable=False, server_default=""),  # the radiologist's account
    Column("signed_name", String(200), nullable=False, server_default=""),  # as shown when signing
    Column("signed_at", DateTime(timezone=True), nullable=True),
    Column("signed_comment", Text, nullable=False, server_default=""),
)
