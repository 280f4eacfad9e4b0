"""The audit record of a study purged at the end of its retention (R2, S2): one DICOM Study Deleted
event (110105, action D) per study, naming the patient and the study (its SOP classes and counts),
with the person who confirmed it as requestor and the reason as the outcome description."""

from __future__ import annotations

from appliance.archive.retention import RetainedStudy
from appliance.audit.events import (
    Action,
    AuditEvent,
    EventId,
    Outcome,
    Participant,
    ParticipantObject,
    patient,
    patient_number,
    study,
)


def deleted_objects(found: RetainedStudy) -> tuple[ParticipantObject, ...]:
    """The patient (CX form, name) and the study (UID, accession number, SOP classes) purged."""
    return (
        patient(patient_number(found.patient_id, found.issuer_of_patient_id), found.patient_name),
        study(found.study_instance_uid, found.accession_number, found.sop_classes),
    )


def study_deleted(found: RetainedStudy, reason: str, participants: tuple[Participant, ...]) -> AuditEvent:
    """The 110105 event of one purge; `participants` name the requestor and the application."""
    return AuditEvent(
        event=EventId.STUDY_DELETED,
        action=Action.DELETE,
        outcome=Outcome.SUCCESS,
        participants=participants,
        objects=deleted_objects(found),
        outcome_description=reason,
    )
