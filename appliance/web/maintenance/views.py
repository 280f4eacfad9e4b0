"""The maintenance access page. Opening and closing write the tunnel's state file
(appliance.maintenance.state), which `appliance-tunnel` follows within a second; each is recorded
in the audit trail (110113 Security Alert E, 110139 / 110140 Remote Service Operation Started /
Stopped, the tunnel as a security resource with the reason and the consent) and mailed to the
practice's recipients (a mail the relay refuses is said on the page; the tunnel opens anyway)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, TextAreaField
from wtforms.validators import Optional

from appliance.accounts.roles import Permission
from appliance.audit.events import Action, EventId, EventType, ObjectKind, ParticipantObject
from appliance.maintenance import notices
from appliance.maintenance.state import (
    MAXIMUM_HOURS,
    MINIMUM_HOURS,
    AlreadyOpen,
    Opening,
    StateError,
    close_tunnel,
    open_tunnel,
    read_state,
    state_path,
)
from appliance.monitor import mail
from appliance.web.auth import current_account, requires
from appliance.web.forms import add_error, lazy, text
from appliance.web.recording import record
from appliance.web.security import client_address
from appliance.web.services import services

LOGGER = logging.getLogger(__name__)
blueprint = Blueprint("maintenance", __name__, url_prefix="/maintenance", template_folder="templates")
REASON_LIMIT = 500


class OpenForm(FlaskForm):
    hours = IntegerField(lazy("How long (hours)"), validators=[Optional()])
    reason = TextAreaField(lazy("Reason"))
    consent = BooleanField(lazy("The practice agrees that its contractor reaches the box during this time"))


@blueprint.route("")
@requires(Permission.MAINTENANCE_ACCESS)
def index() -> ResponseReturnValue:
    return page(OpenForm(hours=services().config.maintenance.default_hours))


def page(form: OpenForm, status: int = 200) -> ResponseReturnValue:
    """The page: the tunnel's state, the opening form or the close button, the box's public key."""
    config = services().config
    now = datetime.now(UTC)
    problem = ""
    try:
        opening = read_state(state_path(config))
    except StateError as error:
        LOGGER.error("maintenance tunnel state unreadable: %s", error)
        opening, problem = None, gettext("The tunnel's state cannot be read: it is kept closed.")
    is_open = opening is not None and opening.is_open(now)
    context = {
        "form": form,
        "opening": opening,
        "is_open": is_open,
        "remaining": remaining_words(opening.remaining(now)) if opening is not None and is_open else "",
        "problem": problem,
        "configured": config.maintenance.enabled,
        "bastion": notices.bastion(config),
        "public_key": public_key(config.maintenance.key_file),
        "minimum": MINIMUM_HOURS,
        "maximum": MAXIMUM_HOURS,
    }
    return render_template("maintenance/index.html", **context), status


def remaining_words(left: timedelta) -> str:
    minutes = int(left.total_seconds() // 60)
    return gettext("%(hours)d h %(minutes)02d min", hours=minutes // 60, minutes=minutes % 60)


def public_key(key_file: Path) -> str:
    """The box's public key (`<key_file>.pub`), '' when it was not made yet or cannot be read."""
    try:
        return Path(f"{key_file}.pub").read_text(encoding="utf-8").strip()
    except OSError:
        return ""


@blueprint.route("/open", methods=["POST"])
@requires(Permission.MAINTENANCE_ACCESS)
def open_access() -> ResponseReturnValue:
    config = services().config
    form = OpenForm()
    if not config.maintenance.enabled:
        flash(gettext("No contractor's server is configured: the tunnel cannot be opened."), "error")
        return redirect(url_for("maintenance.index"))
    if not form.validate_on_submit() or not acceptable(form):
        return page(form, 400)
    account = current_account()
    assert account is not None  # the permission check let a logged-in account through
    now = datetime.now(UTC)
    opening = Opening(
        account.username, account.full_name, client_address(), text(form.reason), True, now,
        now + timedelta(hours=form.hours.data or 0),
    )  # fmt: skip
    try:
        open_tunnel(state_path(config), opening)
    except AlreadyOpen:
        flash(gettext("The tunnel is open already."), "warning")
        return redirect(url_for("maintenance.index"))
    record(EventId.SECURITY_ALERT, Action.EXECUTE, objects=(tunnel_object(opening),),
           event_type=EventType.REMOTE_SERVICE_OPERATION_STARTED)  # fmt: skip
    flash(gettext("Maintenance access open for %(hours)d h.", hours=form.hours.data), "success")
    tell(*notices.opened_mail(config, opening))
    return redirect(url_for("maintenance.index"))


def acceptable(form: OpenForm) -> bool:
    """Whether the duration, the reason and the consent are there; puts each error by its field."""
    hours = form.hours.data
    if hours is None or not MINIMUM_HOURS <= hours <= MAXIMUM_HOURS:
        add_error(form.hours, gettext("between %(low)d and %(high)d hours", low=MINIMUM_HOURS, high=MAXIMUM_HOURS))
    if not text(form.reason):
        add_error(form.reason, gettext("say why the contractor needs to reach the box"))
    elif len(text(form.reason)) > REASON_LIMIT:
        add_error(form.reason, gettext("at most %(count)d characters", count=REASON_LIMIT))
    if not form.consent.data:
        add_error(form.consent, gettext("the practice's consent is required"))
    return not (form.hours.errors or form.reason.errors or form.consent.errors)


@blueprint.route("/close", methods=["POST"])
@requires(Permission.MAINTENANCE_ACCESS)
def close_access() -> ResponseReturnValue:
    config = services().config
    account = current_account()
    closed = close_tunnel(state_path(config), account.username if account else "", datetime.now(UTC))
    if closed is None:
        flash(gettext("The tunnel was closed already."), "info")
        return redirect(url_for("maintenance.index"))
    record(EventId.SECURITY_ALERT, Action.EXECUTE, objects=(tunnel_object(closed),),
           event_type=EventType.REMOTE_SERVICE_OPERATION_STOPPED, description="closed")  # fmt: skip
    flash(gettext("Maintenance access closed."), "success")
    tell(*notices.closed_mail(config, closed))
    return redirect(url_for("maintenance.index"))


def tunnel_object(opening: Opening) -> ParticipantObject:
    return ParticipantObject(
        ObjectKind.SECURITY_RESOURCE,
        notices.AUDIT_OBJECT_ID,
        notices.AUDIT_OBJECT_NAME,
        details=notices.audit_details(opening),
    )


def tell(subject: str, body: str) -> None:
    """Mail the practice's recipients; a failure is said on the page and logged, nothing more."""
    config = services().config
    if not config.mail.enabled:
        return
    try:
        mail.send(config, subject, body, datetime.now(UTC))
    except mail.MailError as error:
        LOGGER.warning("maintenance tunnel mail not sent: %s", error)
        flash(gettext("The mail telling the practice could not be sent: %(error)s", error=str(error)), "warning")
