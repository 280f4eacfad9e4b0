"""The setup pages (H7): a guided flow through six steps (practice, archive, modalities, RIS, mail,
backup) and a summary; after the first setup the same pages edit the settings. Each step validates
and writes through `saving.save` (console settings layer, reload, audit)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm

from appliance import practice_time
from appliance.accounts.roles import Permission
from appliance.audit.events import EventType
from appliance.config.loader import NEEDS_RESTART
from appliance.web.auth import requires
from appliance.web.forms import lazy, text
from appliance.web.services import services
from appliance.web.setup import peers
from appliance.web.setup.forms import RIGHTS, ArchiveForm, BackupForm, MailForm, PracticeForm, RisForm, listed
from appliance.web.setup.saving import FieldOf, by_path, save, show_problems

blueprint = Blueprint("setup", __name__, url_prefix="/setup", template_folder="templates")


@dataclass(frozen=True)
class Step:
    endpoint: str
    title: str


STEPS = (
    Step("setup.practice", lazy("Practice")),
    Step("setup.archive", lazy("Archive")),
    Step("setup.modalities", lazy("Modalities")),
    Step("setup.ris", lazy("RIS")),
    Step("setup.mail", lazy("Mail")),
    Step("setup.backup", lazy("Backup")),
)


@blueprint.route("")
@requires(Permission.EDIT_SETTINGS)
def start() -> ResponseReturnValue:
    """The steps and what each holds now: the way in, the first time and every time after."""
    return render_template("setup/start.html", steps=STEPS, config=services().config)


@blueprint.route("/summary")
@requires(Permission.EDIT_SETTINGS)
def summary() -> ResponseReturnValue:
    config = services().config
    return render_template(
        "setup/summary.html", steps=STEPS, current=len(STEPS), config=config, restart_keys=sorted(NEEDS_RESTART)
    )


@blueprint.route("/practice", methods=["GET", "POST"])
@requires(Permission.EDIT_SETTINGS)
def practice() -> ResponseReturnValue:
    form = filled(PracticeForm, {"site_name": services().config.site_name})
    return step(form, lambda: {"site_name": text(form.site_name)}, by_path({"site_name": "site_name"}))


@blueprint.route("/archive", methods=["GET", "POST"])
@requires(Permission.EDIT_SETTINGS)
def archive() -> ResponseReturnValue:
    config = services().config
    form = filled(ArchiveForm, {"ae_title": config.dicom.ae_title, "worklist_ae_title": config.worklist.ae_title})
    return step(
        form,
        lambda: {"dicom": {"ae_title": text(form.ae_title)}, "worklist": {"ae_title": text(form.worklist_ae_title)}},
        by_path({"dicom.ae_title": "ae_title", "worklist.ae_title": "worklist_ae_title"}),
    )


@blueprint.route("/modalities")
@requires(Permission.EDIT_SETTINGS)
def modalities() -> ResponseReturnValue:
    rows = peers.rows(services().config)
    return render_template(
        "setup/modalities.html",
        steps=STEPS,
        current=current_step("setup.modalities"),
        rows=rows,
        right_names=dict(RIGHTS),
    )


@blueprint.route("/modality", methods=["GET", "POST"])
@requires(Permission.EDIT_SETTINGS)
def modality() -> ResponseReturnValue:
    """Add a modality (no `ae_title` in the query) or edit the one named."""
    config = services().config
    original = request.args.get("ae_title", "")
    if original and config.peer(original) is None:
        abort(404)
    form = peers.form_for(config, original)
    elsewhere: list[str] = []
    if form.validate_on_submit():
        changes, position = peers.changes(config, original, form)
        result = save(changes, EventType.SECURITY_CONFIGURATION)
        if result.written:
            return redirect(url_for("setup.modalities"))
        elsewhere = show_problems(form, result.problems, peers.field_of(position))
    previews = peers.previews(config, original or text(form.ae_title) or "MODALITY", practice_time.today())
    return render_template(
        "setup/modality.html",
        steps=STEPS,
        current=current_step("setup.modalities"),
        form=form,
        original=original,
        previews=previews,
        elsewhere=elsewhere,
    )


@blueprint.route("/modality/remove", methods=["POST"])
@requires(Permission.EDIT_SETTINGS)
def remove_modality() -> ResponseReturnValue:
    config = services().config
    ae_title = request.form.get("ae_title", "")
    if config.peer(ae_title) is None:
        abort(404)
    result = save(peers.removal(config, ae_title), EventType.SECURITY_CONFIGURATION)
    for line in result.lines:
        flash(line, "error")
    return redirect(url_for("setup.modalities"))


@blueprint.route("/ris", methods=["GET", "POST"])
@requires(Permission.EDIT_SETTINGS)
def ris() -> ResponseReturnValue:
    hl7 = services().config.hl7
    form = filled(
        RisForm,
        {
            "accepted_sending_facilities": ", ".join(sorted(hl7.accepted_sending_facilities)),
            "patient_id_authority": hl7.patient_id_authority,
            "ris_host": hl7.ris.host,
            "ris_port": hl7.ris.port,
            "ris_application": hl7.ris.application,
            "ris_facility": hl7.ris.facility,
        },
    )
    return step(form, lambda: ris_changes(form), by_path(RIS_FIELDS))


RIS_FIELDS = {
    "hl7.accepted_sending_facilities": "accepted_sending_facilities",
    "hl7.patient_id_authority": "patient_id_authority",
    "hl7.ris.host": "ris_host",
    "hl7.ris.port": "ris_port",
    "hl7.ris.application": "ris_application",
    "hl7.ris.facility": "ris_facility",
}


def ris_changes(form: RisForm) -> dict[str, Any]:
    return {
        "hl7": {
            "accepted_sending_facilities": listed(text(form.accepted_sending_facilities)),
            "patient_id_authority": text(form.patient_id_authority),
            "ris": {
                "host": text(form.ris_host),
                "port": form.ris_port.data,
                "application": text(form.ris_application),
                "facility": text(form.ris_facility),
            },
        }
    }


@blueprint.route("/mail", methods=["GET", "POST"])
@requires(Permission.EDIT_SETTINGS)
def mail() -> ResponseReturnValue:
    settings = services().config.mail
    form = filled(
        MailForm,
        {
            "relay_host": settings.relay_host,
            "relay_port": settings.relay_port,
            "sender": settings.sender,
            "recipients": "\n".join(settings.recipients),
        },
    )
    return step(form, lambda: mail_changes(form), by_path(MAIL_FIELDS))


MAIL_FIELDS = {
    "mail.relay_host": "relay_host",
    "mail.relay_port": "relay_port",
    "mail.sender": "sender",
    "mail.recipients": "recipients",
}


def mail_changes(form: MailForm) -> dict[str, Any]:
    return {
        "mail": {
            "relay_host": text(form.relay_host),
            "relay_port": form.relay_port.data,
            "sender": text(form.sender),
            "recipients": listed(str(form.recipients.data or "")),
        }
    }


@blueprint.route("/backup", methods=["GET", "POST"])
@requires(Permission.EDIT_SETTINGS)
def backup() -> ResponseReturnValue:
    settings = services().config.backup
    form = filled(BackupForm, {"repository": settings.repository, "time": settings.time})
    return step(
        form,
        lambda: {"backup": {"repository": text(form.repository), "time": text(form.time)}},
        by_path({"backup.repository": "repository", "backup.time": "time"}),
    )


def filled(form_class: type[FlaskForm], current: dict[str, Any]) -> Any:
    """The step's form: the values in force when the page is opened, what was typed when it is sent."""
    return form_class(data=current) if request.method == "GET" else form_class()


def step(form: FlaskForm, changes: Any, field_of: FieldOf) -> ResponseReturnValue:
    """A step page: on a valid post, save and go on (next step, or stay with "save"); else the page,
    with each refusal next to its field."""
    endpoint = request.endpoint or ""
    elsewhere: list[str] = []
    if form.validate_on_submit():
        result = save(changes())
        if result.written:
            return redirect(after(endpoint))
        elsewhere = show_problems(form, result.problems, field_of)
    template = f"setup/{endpoint.partition('.')[2]}.html"
    return render_template(
        template,
        steps=STEPS,
        current=current_step(endpoint),
        form=form,
        elsewhere=elsewhere,
        config=services().config,
    )


def current_step(endpoint: str) -> int:
    return next(position for position, known in enumerate(STEPS) if known.endpoint == endpoint)


def after(endpoint: str) -> str:
    """Where a saved step goes: the next step ("next"), the summary after the last, or itself."""
    if request.form.get("action") != "next":
        return url_for(endpoint)
    position = current_step(endpoint)
    return url_for(STEPS[position + 1].endpoint) if position + 1 < len(STEPS) else url_for("setup.summary")
