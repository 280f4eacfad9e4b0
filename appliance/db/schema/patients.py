"""Patients (P1-P3): who the studies and orders belong to.

`patient.patient_id` / `issuer_of_patient_id` are the practice's IPP (what the modalities and C-FIND
use), created from the RIS's patient feed or from the first image of an unknown patient.
`patient_identity` adds the French identity traits, the identity status (PID-32) and merges;
`patient_identifier` the other identifiers (INS-NIR / INS-NIA with their OID); `identity_change` is
the audit trail of every change (who, what, when).
"""

from sqlalchemy import Column, DateTime, ForeignKey, Index, String, Table, Text, text

from appliance.db.schema.base import PERSON_NAME, BigKey, metadata

patient = Table(
    "patient",
    metadata,
    Column("id", BigKey, primary_key=True),
    Column("patient_id", String(64), nullable=False, index=True),
    Column("issuer_of_patient_id", String(64), nullable=False, server_default=""),
    Column("patient_name", PERSON_NAME, nullable=False, server_default=""),
    Column("patient_name_key", PERSON_NAME, nullable=False, server_default=""),
    Column("patient_birth_date", String(8), nullable=False, server_default=""),
    Column("patient_sex", String(16), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Unique only when there is an identifier: objects without Patient ID are not lumped together.
    Index(
        "uq_patient_identifier",
        "patient_id",
        "issuer_of_patient_id",
        unique=True,
        sqlite_where=text("patient_id != ''"),
        postgresql_where=text("patient_id != ''"),
    ),
    Index("ix_patient_name_key", "patient_name_key", postgresql_ops={"patient_name_key": "text_pattern_ops"}),
)

patient_identity = Table(
    "patient_identity",
    metadata,
    Column("patient_pk", BigKey, ForeignKey("patient.id"), primary_key=True),
    Column("birth_name", String(64), nullable=False, server_default=""),  # PID-5 with XPN-7 = L
    Column("first_given_name", String(64), nullable=False, server_default=""),
    Column("given_names", String(200), nullable=False, server_default=""),  # XPN-3, space-separated
    Column("used_name", String(64), nullable=False, server_default=""),  # PID-5 with XPN-7 = D
    Column("used_given_name", String(64), nullable=False, server_default=""),
    Column("birth_place", String(16), nullable=False, server_default=""),  # INSEE code, PID-11 XAD-9 (BDL)
    Column("identity_status", String(64), nullable=False, server_default=""),  # PID-32 repetitions, ~-joined
    Column("merged_into", BigKey, ForeignKey("patient.id"), nullable=True, index=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

patient_identifier = Table(
    "patient_identifier",
    metadata,
    Column("id", BigKey, primary_key=True),
    Column("patient_pk", BigKey, ForeignKey("patient.id"), nullable=False, index=True),
    Column("identifier", String(64), nullable=False, index=True),  # CX-1
    Column("namespace", String(64), nullable=False, server_default=""),  # CX-4.1
    Column("universal_id", String(64), nullable=False, server_default=""),  # CX-4.2 (OID)
    Column("type_code", String(8), nullable=False, server_default=""),  # CX-5: INS, PI, ...
    # Where the identifier was learnt: "hl7" (the RIS's patient feed) or "dicom" (an image's Other
    # Patient IDs Sequence). Only an INS of a qualified identity (VALI) is ever given out.
    Column("source", String(8), nullable=False, server_default="hl7"),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

identity_change = Table(
    "identity_change",
    metadata,
    Column("id", BigKey, primary_key=True),
    Column("patient_pk", BigKey, ForeignKey("patient.id"), nullable=True, index=True),
    Column("action", String(32), nullable=False),  # created, updated, merged, identifier-changed, ...
    Column("detail", Text, nullable=False, server_default=""),  # may hold patient data: audit trail only
    Column("source_application", String(200), nullable=False, server_default=""),  # MSH-3
    Column("source_facility", String(200), nullable=False, server_default=""),  # MSH-4
    Column("source_event", String(16), nullable=False, server_default=""),  # e.g. ADT^A40
    Column("source_control_id", String(64), nullable=False, server_default=""),
    Column("changed_at", DateTime(timezone=True), nullable=False, index=True),
)
