"""The study search (`/studies`) and the study page (`/studies/<Study Instance UID>`).

Each search shown records one 110112 Query (the search keys as the query); each study page one
110103 DICOM Instances Accessed with the patient and the study (its SOP classes and counts). Pages
call the archive's domain functions (`study_list.console_search`, `study_details.study_details`).
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

from flask import Blueprint, current_app, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from appliance.accounts.roles import Permission
from appliance.archive import tiers
from appliance.archive.key_images import key_objects
from appliance.archive.study_details import StudyDetails, study_details
from appliance.archive.study_list import PAGE_SIZE, Position, StudyCriteria, console_search
from appliance.audit.events import Action, EventId, ObjectKind, ParticipantObject, patient, study
from appliance.practice_time import today
from appliance.web.auth import requires
from appliance.web.recording import record
from appliance.web.services import services
from appliance.web.studies.forms import SearchForm, compact
from appliance.web.viewer.titles import title_words

blueprint = Blueprint("studies", __name__, template_folder="templates")

STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"  # PS3.4 C.6.2: the query's SOP class in the audit record
UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")  # PS3.5 9.1
# What the person sees next to an identity status value (PID-32, IHE PAM France).


@blueprint.route("/studies")
@requires(Permission.SEARCH_PATIENTS)
def search() -> ResponseReturnValue:
    """The study list: today's studies for an empty search, else what the form asks for."""
    form = SearchForm(formdata=request.args)
    if request.args and not form.validate():
        return render_template("studies/search.html", form=form, page=None, today_only=False)
    criteria = criteria_of(form)
    today_only = criteria == StudyCriteria()
    if today_only:
        criteria = StudyCriteria(first_day=today(), last_day=today())
    after = Position.parse(request.args.get("after", ""))
    page = console_search(services().engine, criteria, after, PAGE_SIZE)
    record_search(criteria, after)
    first_arguments = {key: value for key, value in request.args.items() if key != "after"}
    next_arguments = {**first_arguments, "after": page.next_position.token} if page.next_position else None
    return render_template(
        "studies/search.html",
        form=form,
        page=page,
        today_only=today_only,
        after=after,
        first_arguments=first_arguments,
        next_arguments=next_arguments,
    )


@blueprint.route("/studies/<study_instance_uid>")
@requires(Permission.SEARCH_PATIENTS)
def show(study_instance_uid: str) -> ResponseReturnValue:
    """The study page; 404 with a message for a study the archive does not hold."""
    details = study_details(services().engine, study_instance_uid) if UID.match(study_instance_uid) else None
    if details is None:
        message = gettext("The archive holds no study with this Study Instance UID.")
        return render_template("studies/unknown.html", uid=study_instance_uid, message=message), 404
    record_view(details)
    addresses = {sender.ae_title: peer_address(sender.ae_title) for sender in details.senders}
    return render_template(
        "studies/show.html",
        study=details,
        key_images=key_objects(services().engine, study_instance_uid),
        title_words=title_words,
        viewers=current_app.view_functions,
        deferred_instances=tiers.deferred_instances(services().engine, study_instance_uid),
        lossy_copies=tiers.lossy_copies(services().engine, study_instance_uid),
        addresses=addresses,
        action_words=action_words,
        status_words=status_words,
    )


def criteria_of(form: SearchForm) -> StudyCriteria:
    """The search the form asks for; a period chosen by its dates wins over the preset."""
    first_day, last_day = form.first_day.data, form.last_day.data
    if first_day is None and last_day is None and form.preset.data:
        first_day, last_day = preset_days(str(form.preset.data))
    return StudyCriteria(
        patient_name=str(form.patient_name.data or "").strip(),
        patient_id=str(form.patient_id.data or "").strip(),
        national_identifier=compact(form.national_identifier.data),
        accession_number=str(form.accession_number.data or "").strip(),
        first_day=first_day,
        last_day=last_day,
        modality=str(form.modality.data or ""),
    )


def preset_days(preset: str) -> tuple[date | None, date | None]:
    day = today()
    if preset == "today":
        return day, day
    if preset == "yesterday":
        return day - timedelta(days=1), day - timedelta(days=1)
    if preset == "week":
        return day - timedelta(days=6), day
    return None, None


def record_search(criteria: StudyCriteria, after: Position | None) -> None:
    """110112 Query: the search keys (and the page's position) as the query, in the audit trail only."""
    keys = {
        "patient_name": criteria.patient_name,
        "patient_id": criteria.patient_id,
        "national_identifier": criteria.national_identifier,
        "accession_number": criteria.accession_number,
        "first_day": f"{criteria.first_day:%Y%m%d}" if criteria.first_day else "",
        "last_day": f"{criteria.last_day:%Y%m%d}" if criteria.last_day else "",
        "modality": criteria.modality,
        "after": after.token if after else "",
    }
    query = json.dumps({key: value for key, value in keys.items() if value}, sort_keys=True, ensure_ascii=False)
    record(
        EventId.QUERY,
        Action.EXECUTE,
        objects=(ParticipantObject(ObjectKind.QUERY, STUDY_ROOT_FIND, query=query.encode()),),
    )


def record_view(details: StudyDetails) -> None:
    """110103 DICOM Instances Accessed, read: the patient and the study with its SOP classes."""
    record(
        EventId.INSTANCES_ACCESSED,
        Action.READ,
        objects=(
            patient(details.patient.identifier_cx, details.patient.name),
            study(details.study_instance_uid, details.accession_number, details.sop_classes),
        ),
    )


def peer_address(ae_title: str) -> str:
    """The address configured for a sender's AE title ('' for an AE title the box does not know)."""
    peer = services().config.peer(ae_title)
    return peer.host if peer is not None else ""


def action_words(action: str) -> str:
    """An identity change (`identity_change.action`) in words, the action itself when unknown."""
    words = {
        "created": gettext("patient created"),
        "updated": gettext("identity updated"),
        "merged": gettext("another patient merged into this one"),
        "merged-away": gettext("merged into another patient"),
        "merge-unknown-absorbed": gettext("merge of an unknown patient"),
        "identifier-changed": gettext("identifier changed"),
        "admission-cancelled": gettext("admission cancelled"),
        "study-attached": gettext("study attached by hand"),
        "study-linked-to-order": gettext("study joined the patient of its order"),
    }
    return words.get(action, action)


def status_words(status: str) -> str:
    """A scheduled procedure step's status in words."""
    words = {
        "SCHEDULED": gettext("scheduled"),
        "IN PROGRESS": gettext("in progress"),
        "COMPLETED": gettext("done"),
        "DISCONTINUED": gettext("discontinued"),
        "CANCELLED": gettext("cancelled"),
    }
    return words.get(status, status)
