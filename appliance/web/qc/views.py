"""The pages of the quality-control reports. Reading (list, report, document, PDF) is VIEW_HEALTH:
a report holds no patient data (damaged files are named by path and study UID only), and an
inspector may be shown it by anyone at the practice. Signing off is SIGN_QC (radiologists): who and
when are kept with the report and recorded in the audit trail (110113 Security Alert E, 110132
Use of Restricted Function, the report as a security resource with its day and SHA-256)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, send_file, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from appliance.accounts.roles import Permission
from appliance.audit.events import Action, EventId, EventType, ObjectKind, Outcome, ParticipantObject
from appliance.qc import render, store
from appliance.web.auth import requires
from appliance.web.auth.access import can, current_account
from appliance.web.forms import lazy
from appliance.web.qc.forms import SignForm
from appliance.web.recording import record
from appliance.web.services import services

blueprint = Blueprint("qc", __name__, url_prefix="/qc", template_folder="templates")
PAGE = 60
STATUS_WORDS = {"ok": lazy("compliant"), "warning": lazy("to watch"), "failure": lazy("failure")}


@blueprint.context_processor
def words() -> dict[str, object]:
    return {"status_words": STATUS_WORDS}


@blueprint.route("")
@requires(Permission.VIEW_HEALTH)
def index() -> ResponseReturnValue:
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    engine = services().engine
    reports = store.recent(engine, limit=PAGE, offset=(page - 1) * PAGE)
    return render_template("qc/index.html", reports=reports, page=page, more=store.count(engine) > page * PAGE)


@blueprint.route("/<int:report_id>")
@requires(Permission.VIEW_HEALTH)
def show(report_id: int) -> ResponseReturnValue:
    kept = find(report_id)
    form = SignForm() if can(Permission.SIGN_QC) and not kept.signed else None
    return render_template("qc/show.html", kept=kept, fragment=render.fragment(kept), form=form)


@blueprint.route("/<int:report_id>/document")
@requires(Permission.VIEW_HEALTH)
def document(report_id: int) -> ResponseReturnValue:
    """The report alone, as an HTML file to print or keep (its style sheet linked)."""
    kept = find(report_id)
    return Response(render.document(kept, url_for("qc.stylesheet")), mimetype="text/html")


@blueprint.route("/<int:report_id>/pdf")
@requires(Permission.VIEW_HEALTH)
def pdf(report_id: int) -> ResponseReturnValue:
    kept = find(report_id)
    response = Response(render.pdf(kept), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="controle-qualite-{kept.day.isoformat()}.pdf"'
    return response


@blueprint.route("/report.css")
@requires(Permission.VIEW_HEALTH)
def stylesheet() -> ResponseReturnValue:
    return send_file(render.STYLESHEET, mimetype="text/css", max_age=3600)


@blueprint.route("/<int:report_id>/sign", methods=["POST"])
@requires(Permission.SIGN_QC)
def sign(report_id: int) -> ResponseReturnValue:
    kept = find(report_id)
    form = SignForm()
    if not form.validate_on_submit():
        return render_template("qc/show.html", kept=kept, fragment=render.fragment(kept), form=form), 400
    account = current_account()
    assert account is not None  # @requires let a logged-in account through
    try:
        signed = store.sign(services().engine, kept.id, account.username, account.full_name,
                            (form.comment.data or "").strip(), datetime.now(UTC))  # fmt: skip
    except store.AlreadySigned:
        record_sign_off(kept, Outcome.MINOR_FAILURE, "already signed off")
        flash(gettext("This report was already signed off."), "warning")
        return redirect(url_for("qc.show", report_id=kept.id))
    record_sign_off(signed, Outcome.SUCCESS, "")
    flash(gettext("Report signed off."), "success")
    return redirect(url_for("qc.show", report_id=kept.id))


def record_sign_off(kept: store.StoredReport, outcome: Outcome, description: str) -> None:
    details = (("day", kept.day.isoformat()), ("status", kept.status.value), ("facts-sha256", kept.facts_sha256),
               ("signed-off", "true"))  # fmt: skip
    report = ParticipantObject(ObjectKind.SECURITY_RESOURCE, f"qc-report:{kept.id}", "quality-control report",
                               details=details)  # fmt: skip
    record(EventId.SECURITY_ALERT, Action.EXECUTE, objects=(report,), outcome=outcome,
           event_type=EventType.USE_OF_RESTRICTED_FUNCTION, description=description)  # fmt: skip


def find(report_id: int) -> store.StoredReport:
    kept = store.get(services().engine, report_id)
    if kept is None:
        abort(404, description="no such quality-control report")
    return kept
