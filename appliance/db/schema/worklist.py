"""The worklist's tables: scheduled procedure steps (from the RIS's orders) and performed procedure
steps (MPPS). What happens to a procedure is published on the change feed (`changes`)."""

from sqlalchemy import Column, DateTime, ForeignKey, Index, LargeBinary, String, Table

from appliance.db.schema.base import PERSON_NAME, UID, BigKey, metadata

# One row per scheduled procedure step (an order may schedule one step; the RIS updates it).
scheduled_step = Table(
    "scheduled_step",
    metadata,
    Column("id", BigKey, primary_key=True),
    Column("patient_pk", BigKey, ForeignKey("patient.id"), nullable=False, index=True),
    Column("placer_order_number", String(64), nullable=False, server_default=""),
    Column("filler_order_number", String(64), nullable=False, server_default="", index=True),
    Column("accession_number", String(16), nullable=False, server_default="", index=True),
    Column("requested_procedure_id", String(16), nullable=False, server_default=""),
    Column("requested_procedure_description", String(64), nullable=False, server_default=""),
    Column("procedure_code_value", String(64), nullable=False, server_default=""),
    Column("procedure_code_scheme", String(64), nullable=False, server_default=""),
    Column("procedure_code_meaning", String(64), nullable=False, server_default=""),
    Column("study_instance_uid", UID, nullable=False, index=True),
    Column("scheduled_procedure_step_id", String(16), nullable=False, server_default=""),
    Column("scheduled_procedure_step_description", String(64), nullable=False, server_default=""),
    Column("modality", String(16), nullable=False, server_default="", index=True),
    Column("scheduled_station_ae_title", String(16), nullable=False, server_default="", index=True),
    Column("scheduled_station_name", String(16), nullable=False, server_default=""),
    Column("scheduled_start_date", String(8), nullable=False, server_default="", index=True),
    Column("scheduled_start_time", String(16), nullable=False, server_default=""),
    Column("scheduled_performing_physician_name", PERSON_NAME, nullable=False, server_default=""),
    Column("referring_physician_name", PERSON_NAME, nullable=False, server_default=""),
    Column("requesting_physician_name", PERSON_NAME, nullable=False, server_default=""),
    Column("priority", String(16), nullable=False, server_default=""),
    Column("reason", String(64), nullable=False, server_default=""),
    # SCHEDULED, IN PROGRESS, COMPLETED, DISCONTINUED, CANCELLED (PS3.3 C.4.10 and the RIS's order state)
    Column("status", String(16), nullable=False, server_default="SCHEDULED", index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_scheduled_step_orders", "placer_order_number", "filler_order_number"),
)

# Modality Performed Procedure Steps (N-CREATE / N-SET), with the last dataset received.
performed_step = Table(
    "performed_step",
    metadata,
    Column("id", BigKey, primary_key=True),
    Column("sop_instance_uid", UID, nullable=False, unique=True),
    Column("scheduled_step_pk", BigKey, ForeignKey("scheduled_step.id"), nullable=True, index=True),
    Column("status", String(16), nullable=False),
    Column("calling_ae_title", String(16), nullable=False, server_default=""),
    Column("study_instance_uid", UID, nullable=False, server_default=""),
    Column("accession_number", String(16), nullable=False, server_default=""),
    Column("dataset", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
