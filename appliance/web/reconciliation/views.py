"""The pages: the studies waiting to be reconciled, the search for their patient, the confirmation
with both identities side by side, and the attachment itself (`attach_study`, as the CLI does).

Audit: each page showing patients records one event: the list and the confirmation 110103 DICOM
Instances Accessed (R) with the patients and studies shown; the patient search 110112 Query (E)
with its keys; the attachment 110110 Patient Record (U) with both patients and the study.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from appliance.accounts.roles import Permission
from appliance.archive.reconciliation import (
    AttachOutcome,
    attach_study,
    count_unreconciled,
    unreconciled_studies,
    unreconciled_study,
)
from appliance.archive.search import Query, find
from appliance.audit.events import Action, EventId, ObjectKind, Outcome, ParticipantObject, patient, study
from appliance.patients.search import Criteria, FoundPatient, find_patients
from appliance.web.auth import current_account, requires
from appliance.web.forms import text
from appliance.web.reconciliation.forms import SEARCH_FIELDS, AttachForm, PatientSearchForm, national_identifier
from appliance.web.reconciliation.words import helpers, reason_words
from appliance.web.recording import record
from appliance.web.services import services

blueprint = Blueprint("reconciliation", __name__, template_folder="templates")
blueprint.context_processor(helpers)
SHOWN = 100  # studies on the list; the oldest wait for the newest to be dealt with
FOUND = 20  # patients a search shows
QUERY_CLASS = "1.2.840.10008.5.1.4.1.2.1.1"  # Patient Root Q/R FIND: the query object's ID (110181)


@blueprint.route("/reconciliation")
@requires(Permission.RECONCILE)
def index() -> ResponseReturnValue:
    engine = services().engine
    studies = [{**row, "reason_words": reason_words(row)} for row in unreconciled_studies(engine, limit=SHOWN)]
    total = len(studies) if len(studies) < SHOWN else count_unreconciled(engine)
    if studies:
        record(EventId.INSTANCES_ACCESSED, Action.READ, objects_of(studies))
    return render_template("reconciliation/index.html", studies=studies, total=total)


@blueprint.route("/reconciliation/<study_uid>")
@requires(Permission.RECONCILE)
def choose(study_uid: str) -> ResponseReturnValue:
    """The study and the search for the patient it belongs to."""
    waiting = unreconciled_study(services().engine, study_uid)
    if waiting is None:
        flash(gettext("This study is no longer waiting to be reconciled."), "info")
        return redirect(url_for("reconciliation.index"))
    form = PatientSearchForm(formdata=request.args)
    found: list[FoundPatient] | None = None
    if any(name in request.args for name in SEARCH_FIELDS):
        if form.checked():
            criteria = criteria_of(form)
            found = find_patients(services().engine, criteria, FOUND)
            record(EventId.QUERY, Action.EXECUTE, (query_object(criteria),))
    else:
        record(EventId.INSTANCES_ACCESSED, Action.READ, objects_of([waiting]))
    waiting = {**waiting, "reason_words": reason_words(waiting)}
    return render_template("reconciliation/choose.html", study=waiting, form=form, found=found, limit=FOUND)


@blueprint.route("/reconciliation/<study_uid>/attach", methods=["GET"])
@requires(Permission.RECONCILE)
def confirm(study_uid: str) -> ResponseReturnValue:
    """Both identities side by side, and the button that attaches the study."""
    engine = services().engine
    waiting = unreconciled_study(engine, study_uid)
    if waiting is None:
        flash(gettext("This study is no longer waiting to be reconciled."), "info")
        return redirect(url_for("reconciliation.index"))
    patient_id, issuer = request.args.get("patient_id", ""), request.args.get("issuer", "")
    target = target_patient(patient_id, issuer)
    if target is None:
        flash(gettext("This patient is not in the archive (or was merged into another)."), "error")
        return redirect(url_for("reconciliation.choose", study_uid=study_uid))
    objects = (patient_object(waiting), patient_object(target.values), study_object(waiting))
    record(EventId.INSTANCES_ACCESSED, Action.READ, objects)
    form = AttachForm(data={"patient_id": patient_id, "issuer": issuer})
    waiting = {**waiting, "reason_words": reason_words(waiting)}
    return render_template("reconciliation/confirm.html", study=waiting, target=target, form=form)


@blueprint.route("/reconciliation/<study_uid>/attach", methods=["POST"])
@requires(Permission.RECONCILE)
def attach(study_uid: str) -> ResponseReturnValue:
    form = AttachForm()
    if not form.validate_on_submit():
        flash(gettext("The form has expired: please confirm again."), "error")
        return redirect(url_for("reconciliation.index"))
    patient_id, issuer = text(form.patient_id), text(form.issuer)
    engine = services().engine
    before = current_patient(study_uid)
    account = current_account()
    outcome = attach_study(engine, study_uid, patient_id, issuer, account.username if account else "")
    record_attachment(study_uid, before, patient_id, issuer, outcome)
    flash(*outcome_words(outcome))
    if outcome in (AttachOutcome.ATTACHED, AttachOutcome.ALREADY, AttachOutcome.UNKNOWN_STUDY):
        return redirect(url_for("reconciliation.index"))
    return redirect(url_for("reconciliation.choose", study_uid=study_uid))


def criteria_of(form: PatientSearchForm) -> Criteria:
    """The search typed: names match from their beginning, accents and case aside."""
    family, given = text(form.family), text(form.given)
    return Criteria(
        identifier=text(form.ipp),
        family=f"{family.rstrip('*')}*" if family else "",
        given=f"{given.rstrip('*')}*" if given else "",
        national_identifier=national_identifier(form),
    )


def target_patient(patient_id: str, issuer: str) -> FoundPatient | None:
    if not patient_id:
        return None
    found = find_patients(services().engine, Criteria(identifier=patient_id), FOUND)
    return next((item for item in found if item.values["issuer_of_patient_id"] == issuer), None)


def current_patient(study_uid: str) -> dict[str, Any] | None:
    """The patient a study belongs to now (the archive's search, as C-FIND sees it), or None."""
    query = Query("STUDY", {"StudyInstanceUID": study_uid, "AccessionNumber": ""})
    rows = find(services().engine, query, 1)
    return rows[0] if rows else None


def outcome_words(outcome: AttachOutcome) -> tuple[str, str]:
    """What to tell the person, and how (a notice category)."""
    if outcome is AttachOutcome.ATTACHED:
        return gettext("The study is attached to the patient; its images now go out with this identity."), "success"
    if outcome is AttachOutcome.ALREADY:
        return gettext("The study already belonged to this patient: nothing changed."), "info"
    if outcome is AttachOutcome.UNKNOWN_PATIENT:
        return gettext("This patient is not in the archive: nothing changed."), "error"
    return gettext("This study is not in the archive: nothing changed."), "error"


def record_attachment(
    study_uid: str, before: dict[str, Any] | None, patient_id: str, issuer: str, outcome: AttachOutcome
) -> None:
    objects: list[ParticipantObject] = []
    if before is not None:
        objects.append(patient(cx(before["PatientID"], before["IssuerOfPatientID"]), str(before["PatientName"])))
    objects.append(patient(cx(patient_id, issuer)))
    objects.append(study(study_uid, str(before["AccessionNumber"]) if before else ""))
    succeeded = outcome in (AttachOutcome.ATTACHED, AttachOutcome.ALREADY)
    description = f"attached to {cx(patient_id, issuer)} by console"
    record(
        EventId.PATIENT_RECORD,
        Action.UPDATE,
        tuple(objects),
        outcome=Outcome.SUCCESS if succeeded else Outcome.MINOR_FAILURE,
        description=description if outcome is AttachOutcome.ATTACHED else f"{description}: {outcome.value}",
    )


def objects_of(studies: list[dict[str, Any]]) -> tuple[ParticipantObject, ...]:
    """The patients (each once) and the studies of a page."""
    patients = {(row["patient_id"], row["issuer_of_patient_id"]): patient_object(row) for row in studies}
    return (*patients.values(), *(study_object(row) for row in studies))


def patient_object(values: dict[str, Any]) -> ParticipantObject:
    return patient(cx(values["patient_id"], values["issuer_of_patient_id"]), str(values["patient_name"]))


def study_object(row: dict[str, Any]) -> ParticipantObject:
    return study(row["study_instance_uid"], row["accession_number"])


def query_object(criteria: Criteria) -> ParticipantObject:
    keys = {key: value for key, value in vars(criteria).items() if value}
    return ParticipantObject(ObjectKind.QUERY, QUERY_CLASS, query=json.dumps(keys, ensure_ascii=False).encode())


def cx(patient_id: str, issuer: str) -> str:
    """A patient ID in the CX form the audit trail uses: `ID^^^ISSUER`, or the ID alone."""
    return f"{patient_id}^^^{issuer}" if issuer else patient_id
