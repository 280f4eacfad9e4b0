"""Every table of the index, declared on one MetaData (`metadata`), one module per concern.

Tables live here, below the domain packages, so that the domain is a one-way chain (patients <-
archive <- worklist) that never imports another package's tables from above. A schema change is a
change here plus a migration in `db/migrations/versions/`; `tests/unit/test_architecture.py` fails
when the two differ.
"""

from appliance.db.schema.accounts import access_token, account, job, login_throttle
from appliance.db.schema.archive import (
    commitment_request,
    instance,
    instance_header,
    instance_metadata,
    quarantined_duplicate,
    series,
    study,
    unsynced_instance,
)
from appliance.db.schema.base import metadata
from appliance.db.schema.changes import change, change_cursor
from appliance.db.schema.dose import dose_event, dose_report
from appliance.db.schema.forward import remote_query
from appliance.db.schema.health import health_change, health_measure, health_state
from appliance.db.schema.hl7 import hl7_inbox
from appliance.db.schema.outbox import outbox
from appliance.db.schema.patients import identity_change, patient, patient_identifier, patient_identity
from appliance.db.schema.qc import qc_report
from appliance.db.schema.worklist import performed_step, scheduled_step

__all__ = [
    "access_token",
    "account",
    "change",
    "change_cursor",
    "commitment_request",
    "dose_event",
    "dose_report",
    "health_change",
    "health_measure",
    "health_state",
    "hl7_inbox",
    "identity_change",
    "instance",
    "instance_header",
    "instance_metadata",
    "job",
    "login_throttle",
    "metadata",
    "outbox",
    "patient",
    "patient_identifier",
    "patient_identity",
    "performed_step",
    "qc_report",
    "quarantined_duplicate",
    "remote_query",
    "scheduled_step",
    "series",
    "study",
    "unsynced_instance",
]
