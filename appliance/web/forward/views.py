"""The pages:

- `/forward` (VIEW_FORWARDING): the rules in force and each destination's queue; no patient data,
  so no audit event. `/forward/rules/new`, `/forward/rules/<n>` (EDIT_SETTINGS: administrators): a
  rule added or changed, `POST /forward/rules/<n>/remove` removed; written to the console's
  settings layer, put in force by SIGHUP and recorded as 110113 Security Alert E, 110129 Security
  Configuration (where the images go is where patient data goes), as the modality pages do.
  `/forward/<AE>`: its waiting and set-aside instances with the reason;
  `POST /forward/<AE>/retry` (RETRY_MESSAGES): everything of that queue due now, recorded as 110113
  Security Alert E, 110132 Use of Restricted Function, the queue as object (as the message log does).
- `/priors` (SEARCH_PATIENTS): the search form (no patient data, no record); `POST /priors` queues
  the search for the worker; `/priors/<id>` follows it (progress bar polled on `/priors/<id>/state`)
  then lists the studies found, each time recording 110112 Query E with the keys and the patients
  answered (as the study search does for each search shown); `POST /priors/<id>/fetch` queues the study's
  fetch (C-MOVE by the worker, retried until it arrives) and records 110104 Instances Transferred C
  (asked) with the patient and the study; the arrival itself is recorded by the archive.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from appliance.accounts.roles import Permission
from appliance.audit.events import (
    Action,
    EventId,
    EventType,
    ObjectKind,
    Outcome,
    ParticipantObject,
    patient,
    patient_number,
    study,
)
from appliance.forward import queues, remote
from appliance.web.auth import requires
from appliance.web.auth.access import background, can, current_account
from appliance.web.forms import choices
from appliance.web.forward import rule_editing
from appliance.web.forward.forms import ButtonForm, FetchForm, RemoveRuleForm, SearchForm
from appliance.web.recording import record
from appliance.web.services import services
from appliance.web.setup.saving import save, show_problems

blueprint = Blueprint("forward", __name__, template_folder="templates")
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"


@blueprint.route("/forward")
@requires(Permission.VIEW_FORWARDING)
def index() -> ResponseReturnValue:
    config = services().config
    destinations = sorted({rule.destination for rule in config.forward.rules})
    states = queues.queue_states(services().engine, destinations)
    return render_template("forward/index.html", rules=config.forward.rules, states=states,
                           archives=config.remote_archives, may_edit=can(Permission.EDIT_SETTINGS))  # fmt: skip


@blueprint.route("/forward/rules/new", methods=["GET", "POST"])
@requires(Permission.EDIT_SETTINGS)
def new_rule() -> ResponseReturnValue:
    return edit_rule(0)


@blueprint.route("/forward/rules/<int:number>", methods=["GET", "POST"])
@requires(Permission.EDIT_SETTINGS)
def rule(number: int) -> ResponseReturnValue:
    return edit_rule(number)


def edit_rule(number: int) -> ResponseReturnValue:
    """Add a rule (`number` 0) or change the rule shown as `number` in the list."""
    config = services().config
    current = rule_editing.rule_at(config, number)
    if number and current is None:
        abort(404)
    form = rule_editing.form_for(config, current)
    elsewhere: list[str] = []
    if form.validate_on_submit():
        if current is not None and form.original.data != current.name:
            return changed_meanwhile()
        changes, position = rule_editing.changes(config, number, form)
        result = save(changes, EventType.SECURITY_CONFIGURATION)
        if result.written:
            return redirect(url_for("forward.index"))
        elsewhere = show_problems(form, result.problems, rule_editing.field_of(position))
    return render_template("forward/rule.html", form=form, number=number, elsewhere=elsewhere,
                           has_peers=bool(config.peers))  # fmt: skip


@blueprint.route("/forward/rules/<int:number>/remove", methods=["POST"])
@requires(Permission.EDIT_SETTINGS)
def remove_rule(number: int) -> ResponseReturnValue:
    config = services().config
    current = rule_editing.rule_at(config, number)
    if current is None:
        abort(404)
    form = RemoveRuleForm()
    if not form.validate_on_submit():
        abort(400)
    if form.original.data != current.name:
        return changed_meanwhile()
    result = save(rule_editing.removal(config, number), EventType.SECURITY_CONFIGURATION)
    for line in result.lines:
        flash(line, "error")
    return redirect(url_for("forward.index"))


def changed_meanwhile() -> ResponseReturnValue:
    """The list changed since the page was shown (another administrator, a reload): nothing done."""
    flash(gettext("The rules changed since this page was shown: nothing was saved, here they are now."), "warning")
    return redirect(url_for("forward.index"))


@blueprint.route("/forward/<destination>")
@requires(Permission.VIEW_FORWARDING)
def queue(destination: str) -> ResponseReturnValue:
    pending, parked = queues.waiting(services().engine, destination)
    peer = services().config.peer(destination)
    return render_template("forward/queue.html", destination=destination, peer=peer, pending=pending, parked=parked,
                           retry=ButtonForm(), may_retry=can(Permission.RETRY_MESSAGES))  # fmt: skip


@blueprint.route("/forward/<destination>/retry", methods=["POST"])
@requires(Permission.RETRY_MESSAGES)
def retry(destination: str) -> ResponseReturnValue:
    if not ButtonForm().validate_on_submit():
        abort(400)
    count = queues.retry_now(services().engine, destination)
    subject = ParticipantObject(ObjectKind.JOB, queues.channel_of(destination), "forwarding queue",
                                details=(("messages", str(count)),))  # fmt: skip
    record(EventId.SECURITY_ALERT, Action.EXECUTE, (subject,), event_type=EventType.USE_OF_RESTRICTED_FUNCTION,
           description=f"forwarding queue retried now: {count} message(s)")  # fmt: skip
    if count:
        flash(gettext("%(count)s instance(s) will be sent again in a moment.", count=count), "success")
    else:
        flash(gettext("Nothing waits for this destination."), "info")
    return redirect(url_for("forward.queue", destination=destination))


def search_form() -> SearchForm:
    form = SearchForm()
    form.archive.choices = choices([(peer.ae_title, peer.description or peer.ae_title)
                                    for peer in services().config.remote_archives])  # fmt: skip
    return form


@blueprint.route("/priors", methods=["GET", "POST"])
@requires(Permission.SEARCH_PATIENTS)
def search() -> ResponseReturnValue:
    form = search_form()
    if form.is_submitted() and form.checked():
        keys = form.keys()
        account = current_account()
        query_id = remote.submit(services().engine, str(form.archive.data), keys, account.username if account else "")
        return redirect(url_for("forward.results", query_id=query_id))
    return render_template("forward/search.html", form=form, archives=services().config.remote_archives)


def find(query_id: int) -> remote.RemoteQuery:
    found = remote.get(services().engine, query_id)
    if found is None:
        abort(404)
    return found


@blueprint.route("/priors/<int:query_id>")
@requires(Permission.SEARCH_PATIENTS)
def results(query_id: int) -> ResponseReturnValue:
    query = find(query_id)
    if query.state == remote.DONE:
        record_answers(query)
    return render_template("forward/results.html", query=query, fetch=FetchForm())


def record_answers(query: remote.RemoteQuery) -> None:
    """110112 Query E: the keys as the query object, the archive asked, the patients answered."""
    encoded = json.dumps(dict(query.keys), ensure_ascii=False).encode()
    keys = ParticipantObject(ObjectKind.QUERY, STUDY_ROOT_FIND, query=encoded,
                             details=(("archive", query.peer_ae_title),))  # fmt: skip
    patients = {
        patient_number(answer.get("PatientID", ""), answer.get("IssuerOfPatientID", "")): answer.get("PatientName", "")
        for answer in query.answers
        if answer.get("PatientID")
    }
    objects = (keys, *[patient(key, name) for key, name in sorted(patients.items())])
    record(EventId.QUERY, Action.EXECUTE, objects, description=f"search of {query.peer_ae_title}")


@blueprint.route("/priors/<int:query_id>/state")
@requires(Permission.SEARCH_PATIENTS)
@background
def state(query_id: int) -> ResponseReturnValue:
    """The search's state for the progress bar (does not keep an idle session alive)."""
    return jsonify(state_of(find(query_id)))


def state_of(query: remote.RemoteQuery) -> dict[str, Any]:
    words = {remote.WAITING: gettext("waiting"), remote.RUNNING: gettext("asking the remote archive"),
             remote.DONE: gettext("answered"), remote.FAILED: gettext("failed")}  # fmt: skip
    return {"id": query.id, "state": query.state, "state_label": words.get(query.state, query.state),
            "percent": 100 if query.finished else (50 if query.state == remote.RUNNING else 0),
            "step": "", "finished": query.finished}  # fmt: skip


@blueprint.route("/priors/<int:query_id>/fetch", methods=["POST"])
@requires(Permission.SEARCH_PATIENTS)
def fetch(query_id: int) -> ResponseReturnValue:
    query = find(query_id)
    form = FetchForm()
    if not form.validate_on_submit():
        abort(400)
    answer = next(
        (item for item in query.answers if item.get("StudyInstanceUID") == form.study_instance_uid.data), None
    )
    if answer is None:
        abort(404)
    uid = answer["StudyInstanceUID"]
    queued = remote.fetch_study(services().engine, query.peer_ae_title,
                                remote.Fetch(uid, answer.get("PatientID", ""), "console"))  # fmt: skip
    objects = (
        patient(
            patient_number(answer.get("PatientID", ""), answer.get("IssuerOfPatientID", "")),
            answer.get("PatientName", ""),
        ),
        study(uid, answer.get("AccessionNumber", "")),
    )
    record(EventId.INSTANCES_TRANSFERRED, Action.CREATE, objects, outcome=Outcome.SUCCESS,
           description=f"fetch from {query.peer_ae_title} {'asked' if queued else 'asked before'}")  # fmt: skip
    if queued:
        flash(gettext("The study will be fetched: it appears in the archive once received."), "success")
    else:
        flash(gettext("This study was asked for already."), "info")
    return redirect(url_for("forward.results", query_id=query_id))
