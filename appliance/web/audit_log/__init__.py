"""The audit trail in the console (S2): search by patient, user, event and dates; one record in
full; the chain's verification (run by the background worker); exports for an inspection (CSV,
DICOM AuditMessage XML) and a patient's access report. Reading the trail is itself recorded."""

from appliance.web.audit_log.views import blueprint

__all__ = ["blueprint"]
