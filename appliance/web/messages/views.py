"""The pages: the log (VIEW_HL7_LOG: administrators and maintenance; no patient data, so no audit
event), one message's content (VIEW_HL7_CONTENT: administrators; recorded as 110110 Patient Record,
R, with the patients its PID and MRG segments name), and the retry of a parked message
(RETRY_MESSAGES; recorded as 110113 Security Alert, E, 110132 Use of Restricted Function, the way
dcm4chee records queue operations: 110100 Application Activity is for starts and stops)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from appliance import inbox, outbox
from appliance.accounts.roles import Permission
from appliance.audit.events import Action, EventId, EventType, ObjectKind, Outcome, ParticipantObject
from appliance.practice_time import day_start
from appliance.web.auth import requires
from appliance.web.messages.content import NamedPatient, patients_named, readable_lines
from appliance.web.messages.forms import RECEIVED, SENT, STATUS_WORDS, FilterForm, RetryForm
from appliance.web.recording import record
from appliance.web.services import services

blueprint = Blueprint("messages", __name__, template_folder="templates")
PAGE = 50


@blueprint.context_processor
def words() -> dict[str, object]:
    return {"status_words": STATUS_WORDS}


@blueprint.route("/messages")
@requires(Permission.VIEW_HL7_LOG)
def index() -> ResponseReturnValue:
    form = FilterForm(formdata=request.args)
    before = request.args.get("before", type=int)
    rows: list[inbox.ReceivedMessage] | list[outbox.Message] = []
    if form.checked():
        rows = page(form, before)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    older = older_url(rows[-1].id) if more and rows else ""
    return render_template(
        "messages/index.html", form=form, rows=rows, older=older, sent=form.direction.data == SENT, first=before is None
    )


def page(form: FilterForm, before: int | None) -> list[inbox.ReceivedMessage] | list[outbox.Message]:
    """One page and one more row (to know whether there is an older page)."""
    engine = services().engine
    since, until = day_start(form.since.data), day_start(form.until.data, next_day=True)
    kind, status = (form.message_type.data or "").strip(), form.status.data or ""
    if form.direction.data == SENT:
        return outbox.listing(engine, outbox.Selection(kind, status, since, until), before, PAGE + 1)
    return inbox.listing(engine, inbox.Selection(kind, status, since, until), before, PAGE + 1)


def older_url(last_id: int) -> str:
    arguments: dict[str, Any] = {key: value for key, value in request.args.items() if key != "before"}
    return url_for("messages.index", **arguments, before=last_id)


@blueprint.route("/messages/<any(in, out):direction>/<int:message_id>")
@requires(Permission.VIEW_HL7_CONTENT)
def show(direction: str, message_id: int) -> ResponseReturnValue:
    engine = services().engine
    found = inbox.message(engine, message_id) if direction == RECEIVED else outbox.message(engine, message_id)
    if found is None:
        abort(404)
    payload = found.message if isinstance(found, inbox.ReceivedMessage) else found.payload
    acknowledgement = found.acknowledgement if isinstance(found, inbox.ReceivedMessage) else b""
    named = patients_named(payload)
    record_reading(direction, message_id, named)
    return render_template(
        "messages/show.html",
        message=found,
        sent=direction == SENT,
        lines=readable_lines(payload),
        acknowledgement=readable_lines(acknowledgement),
        retry=RetryForm(),
    )


@blueprint.route("/messages/out/<int:message_id>/retry", methods=["POST"])
@requires(Permission.RETRY_MESSAGES)
def retry(message_id: int) -> ResponseReturnValue:
    if not RetryForm().validate_on_submit():
        abort(400)
    found = outbox.message(services().engine, message_id)
    if found is None:
        abort(404)
    queued = outbox.retry(services().engine, message_id)
    record_retry(found, queued)
    if queued:
        flash(gettext("The message is queued again: it will be sent in a moment."), "success")
    else:
        flash(gettext("This message is not set aside: there is nothing to retry."), "warning")
    return redirect(url_for("messages.show", direction=SENT, message_id=message_id))


def record_reading(direction: str, message_id: int, named: list[NamedPatient]) -> None:
    objects = tuple(
        ParticipantObject(
            ObjectKind.PATIENT,
            person.identifiers[0],
            person.name,
            details=tuple(("identifier", other) for other in person.identifiers[1:]),
        )
        for person in named
    )
    where = "received" if direction == RECEIVED else "sent"
    record(EventId.PATIENT_RECORD, Action.READ, objects, description=f"content of {where} HL7 message #{message_id}")


def record_retry(message: outbox.Message, queued: bool) -> None:
    subject = ParticipantObject(
        ObjectKind.JOB,
        f"outbox:{message.id}",
        message.kind,
        details=(("channel", message.channel), ("summary", message.summary)),
    )
    record(
        EventId.SECURITY_ALERT,
        Action.EXECUTE,
        (subject,),
        outcome=Outcome.SUCCESS if queued else Outcome.MINOR_FAILURE,
        event_type=EventType.USE_OF_RESTRICTED_FUNCTION,
        description="message retried" if queued else f"message not retried: it is {message.status}",
    )
