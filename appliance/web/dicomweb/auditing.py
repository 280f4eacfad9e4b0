"""What DICOMweb tells the audit trail: one event per request, the same events the DICOM edge
records for the same acts (`appliance/dicom/audit.py`):

- QIDO-RS: 110112 Query (E), the Study Root FIND SOP class with the query string as the query, and
  the patients answered (at most 100 named);
- WADO-RS and WADO-URI objects (the DICOM files themselves, as a C-GET sends them): 110104 DICOM
  Instances Transferred (R), the archive as source, the requestor as destination, each patient
  and study with its instances by SOP class;
- metadata, frames, rendered images and thumbnails (shown, not handed over as objects): 110103
  DICOM Instances Accessed (R) with the patients and studies;
- STOW-RS: 110104 (C), the requestor as source, the archive as destination, as C-STORE records.

The requestor is the account (session or token) at its address, or, in development mode, the
loopback caller let in without login.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import request

from appliance.archive.ingest import StoreOutcome, StoreResult
from appliance.archive.retrieve import RetrieveItem
from appliance.audit.events import (
    Action,
    AuditEvent,
    EventId,
    ObjectKind,
    Outcome,
    Participant,
    ParticipantObject,
    ParticipantRole,
    application,
    never_raises,
    patient,
    patient_number,
    person,
)
from appliance.audit.subjects import InstanceTally, StudySubject, study_subjects, tally_of
from appliance.web.auth.access import current_account, development_loopback
from appliance.web.security import client_address
from appliance.web.services import APPLICATION_NAME, services

STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
MAXIMUM_PATIENTS_LISTED = 100
DEVELOPMENT_CALLER = "development-loopback"
STORED = {StoreOutcome.STORED, StoreOutcome.DUPLICATE_IDENTICAL, StoreOutcome.DUPLICATE_QUARANTINED}


def requestor(role: ParticipantRole) -> Participant:
    account = current_account()
    if account is not None:
        found = person(account.username, client_address(), account.full_name)
    else:
        found = person(DEVELOPMENT_CALLER if development_loopback() else "", client_address())
    return Participant(found.user_id, True, found.kind, found.address, found.user_name, role)


def archive(role: ParticipantRole) -> Participant:
    return application(APPLICATION_NAME, request.host, role)


def record(
    event: EventId,
    action: Action,
    participants: tuple[Participant, ...],
    objects: Iterable[ParticipantObject],
    outcome: Outcome = Outcome.SUCCESS,
    description: str = "",
) -> None:
    services().record(AuditEvent(event, action, outcome, participants, tuple(objects), None, description))


@never_raises
def queried(matches: Iterable[dict[str, object]], outcome: Outcome = Outcome.SUCCESS, description: str = "") -> None:
    """One 110112 Query (E): the query string as received, then the patients answered."""
    patients: dict[str, str] = {}
    for match in matches:
        if match.get("PatientID") and len(patients) < MAXIMUM_PATIENTS_LISTED:
            key = patient_number(str(match["PatientID"]), str(match.get("IssuerOfPatientID") or ""))
            patients.setdefault(key, str(match.get("PatientName") or ""))
    keys = ParticipantObject(ObjectKind.QUERY, STUDY_ROOT_FIND, query=request.query_string,
                             details=(("Path", request.path),))  # fmt: skip
    participants = (requestor(ParticipantRole.SOURCE), archive(ParticipantRole.DESTINATION))
    objects = (keys, *(patient(key, name) for key, name in patients.items()))
    record(EventId.QUERY, Action.EXECUTE, participants, objects, outcome, description)


@never_raises
def retrieved(event: EventId, sent: list[RetrieveItem], failed: list[RetrieveItem], description: str = "") -> None:
    """One 110104 (objects handed over) or 110103 (shown) event, read action, for the instances
    of one request; minor failure when some could not go, serious when none did."""
    subjects = study_subjects(services().engine, {item.study_instance_uid for item in [*sent, *failed]})
    tally = tally_of(subjects, sent, failed)
    objects = [entry for key, counted in sorted(tally.patients.items()) for entry in counted.objects(key)]
    outcome = Outcome.SUCCESS if not failed else Outcome.MINOR_FAILURE if sent else Outcome.SERIOUS_FAILURE
    if failed:
        description = description or f"{len(failed)} instance(s) could not be sent"
    participants = (requestor(ParticipantRole.DESTINATION), archive(ParticipantRole.SOURCE))
    record(event, Action.READ, participants, objects, outcome, description)


@never_raises
def stored(results: list[StoreResult]) -> None:
    """One 110104 (C) for a STOW-RS request: its instances by patient, study and SOP class."""
    tally = InstanceTally()
    for result in results:
        attributes = result.attributes
        if attributes is None:
            tally.fail_unattributed()
            continue
        subject = StudySubject(attributes.study_instance_uid, attributes.accession_number, attributes.patient_id,
                               attributes.issuer_of_patient_id, attributes.patient_name)  # fmt: skip
        tally.add(subject, attributes.sop_class_uid, result.outcome in STORED)
    objects = [entry for key, counted in sorted(tally.patients.items()) for entry in counted.objects(key)]
    failed = sum(counted.failed for counted in tally.patients.values()) + tally.unattributed_failures
    done = len(results) - failed
    outcome = Outcome.SUCCESS if not failed else Outcome.MINOR_FAILURE if done else Outcome.SERIOUS_FAILURE
    description = f"{failed} instance(s) refused" if failed else ""
    participants = (requestor(ParticipantRole.SOURCE), archive(ParticipantRole.DESTINATION))
    record(EventId.INSTANCES_TRANSFERRED, Action.CREATE, participants, objects, outcome, description)
