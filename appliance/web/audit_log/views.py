"""The audit trail's pages (READ_AUDIT: the administrator, who is often the practice's DPO too).

Every page that shows something of the trail records one 110101 Audit Log Used (PS3.15 A.5.3.2):

- the search (`/audit`): R, the trail with the filters as its query, and the patient when the
  search names one;
- one record (`/audit/<seq>`): R, the seq asked for, and the patients the record names;
- a verification (`/audit/verify`, POST): E, the job that recomputes the chain (run by the
  background worker: a year of records takes a minute or more); its page (`/audit/verify/<job>`)
  R; the job's progress polled by the page records nothing (it shows a percentage only);
- the exports (`/audit/export`, `/audit/access-report`): R with the filters, the format and the
  count, as `appliance audit export` records them (`exports.py`).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from appliance import jobs
from appliance.accounts.roles import Permission
from appliance.audit.events import Action, ParticipantObject, patient
from appliance.audit.trail import AuditFilter, AuditRecord
from appliance.web.audit_log import words
from appliance.web.audit_log.exports import CSV, FORMATS, access_report, export
from appliance.web.audit_log.forms import AccessReportForm, SearchForm, VerifyForm
from appliance.web.audit_log.reading import opened_trail, patients_of, record_use
from appliance.web.auth import current_account, requires
from appliance.web.auth.access import background
from appliance.web.forms import text
from appliance.web.jobs.views import STATE_NAMES, state_of
from appliance.web.services import services

blueprint = Blueprint("audit_log", __name__, template_folder="templates")
PAGE = 50


@blueprint.context_processor
def page_words() -> dict[str, object]:
    return {
        "event_words": words.event_words,
        "action_words": words.action_words,
        "outcome_words": words.outcome_words,
        "person_name": words.person_name,
        "participant_kinds": words.PARTICIPANT_KINDS,
        "participant_roles": words.PARTICIPANT_ROLES,
        "object_kinds": words.OBJECT_KINDS,
        "state_names": STATE_NAMES,
    }


@blueprint.route("/audit")
@requires(Permission.READ_AUDIT)
def index() -> ResponseReturnValue:
    """The search: newest first, 50 a page (keyset: the seq of the last row shown)."""
    form = SearchForm(formdata=request.args)
    before = request.args.get("before", type=int)
    shown: dict[str, Any] = {"rows": [], "total": None, "older": ""}
    if form.validate():
        shown = search(form, before)
    return render_template(
        "audit_log/index.html",
        form=form,
        first=before is None,
        last_verification=jobs.latest(services().engine, jobs.VERIFY_AUDIT),
        verify_form=VerifyForm(),
        export_arguments=form.keys(),
        **shown,
    )


def search(form: SearchForm, before: int | None) -> dict[str, Any]:
    """One page of records and how many match in all; the page recorded (110101 R)."""
    selection = form.selection()
    with opened_trail() as trail:
        rows = trail.search(selection, PAGE + 1, older_than=before)
        total = trail.count(selection)
    older = older_url(rows[PAGE - 1].seq) if len(rows) > PAGE else ""
    query = form.keys() | ({"before": str(before)} if before is not None else {})
    record_use(Action.READ, query, named_patient(selection))
    return {"rows": rows[:PAGE], "total": total, "older": older}


def named_patient(selection: AuditFilter) -> tuple[ParticipantObject, ...]:
    return (patient(selection.patient),) if selection.patient else ()


def older_url(last_seq: int) -> str:
    arguments: dict[str, Any] = {key: value for key, value in request.args.items() if key != "before"}
    return url_for("audit_log.index", **arguments, before=last_seq)


@blueprint.route("/audit/<int:seq>")
@requires(Permission.READ_AUDIT)
def show(seq: int) -> ResponseReturnValue:
    """One record in full: every participant and object, its hash and the previous record's."""
    with opened_trail() as trail:
        found = trail.find(seq)
    if found is None:
        abort(404, description="no such record")
    record_use(Action.READ, {"seq": str(seq)}, patients_of(found))
    return render_template("audit_log/record.html", record=found, query_text=query_text, summary=summary(found))


def summary(found: AuditRecord) -> dict[str, object]:
    event = found.event
    return {
        "event": words.event_words(event),
        "requestor": event.requestor,
        "others": [participant for participant in event.participants if not participant.is_requestor],
    }


def query_text(query: bytes) -> str:
    """Search keys as text (the console's and HL7 queries are text; a DICOM identifier is binary)."""
    try:
        decoded = query.decode("utf-8")
    except UnicodeDecodeError:
        decoded = ""
    if decoded and decoded.isprintable():
        return decoded
    return gettext("%(count)s octets (an encoded DICOM identifier: see the XML export)", count=len(query))


@blueprint.route("/audit/verify", methods=["POST"])
@requires(Permission.READ_AUDIT)
def verify() -> ResponseReturnValue:
    """Queue the chain's verification for the background worker (recorded: 110101 E)."""
    if not VerifyForm().validate_on_submit():
        abort(400)
    account = current_account()
    try:
        job_id = jobs.submit(services().engine, jobs.VERIFY_AUDIT, {}, account.username if account else "")
    except jobs.AlreadyQueued as queued:
        flash(gettext("A verification is already waiting or running."), "warning")
        return redirect(url_for("audit_log.verification", job_id=queued.job_id))
    record_use(Action.EXECUTE, {"verification": str(job_id)}, details=(("job", str(job_id)),))
    return redirect(url_for("audit_log.verification", job_id=job_id))


@blueprint.route("/audit/verify/<int:job_id>")
@requires(Permission.READ_AUDIT)
def verification(job_id: int) -> ResponseReturnValue:
    """A verification: its progress, then the chain intact (records, last hash) or each break."""
    job = verification_job(job_id)
    record_use(Action.READ, {"verification": str(job_id)})
    breaks = [(item["seq"], words.problem_words(item["problem"])) for item in job.result.get("breaks", [])]
    return render_template("audit_log/verification.html", job=job, breaks=breaks)


@blueprint.route("/audit/verify/<int:job_id>/state")
@requires(Permission.READ_AUDIT)
@background
def verification_state(job_id: int) -> ResponseReturnValue:
    """The verification's progress as JSON, for the progress bar (no record: a percentage only)."""
    return jsonify(state_of(verification_job(job_id)))


def verification_job(job_id: int) -> jobs.Job:
    try:
        job = jobs.get(services().engine, job_id)
    except jobs.NoSuchJob:
        abort(404, description="no such verification")
    if job.kind != jobs.VERIFY_AUDIT:
        abort(404, description="no such verification")
    return job


@blueprint.route("/audit/export")
@requires(Permission.READ_AUDIT)
def export_records() -> ResponseReturnValue:
    """The search's records as CSV or DICOM AuditMessage XML, downloaded (and recorded)."""
    form = SearchForm(formdata=request.args)
    export_format = request.args.get("format", CSV)
    if export_format not in FORMATS:
        abort(400, description="the format is csv or xml")
    if not form.validate():
        arguments: dict[str, Any] = {key: value for key, value in request.args.items() if key != "format"}
        return redirect(url_for("audit_log.index", **arguments))
    return export(form.selection(), export_format)


@blueprint.route("/audit/access-report")
@requires(Permission.READ_AUDIT)
def patient_report() -> ResponseReturnValue:
    """A patient's right of access: the form, then the CSV of dates, actions and roles."""
    form = AccessReportForm(formdata=request.args)
    if request.args and form.validate():
        return access_report(text(form.patient))
    return render_template("audit_log/access_report.html", form=form)
