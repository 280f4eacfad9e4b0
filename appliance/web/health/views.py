"""The pages: a source's detail (VIEW_HEALTH: everyone; every subject's state with the contractor's
detail, which never holds patient data, and the source's recent changes; no audit event) and the
test alert (EDIT_SETTINGS: administrators; recorded as 110113 Security Alert, E, 110132 Use of
Restricted Function, the way the console records its other restricted actions)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from appliance.accounts.roles import Permission
from appliance.audit.events import Action, EventId, EventType, ObjectKind, Outcome, ParticipantObject
from appliance.monitor import overview, store
from appliance.monitor.findings import Severity
from appliance.monitor.mail import MailError, send_test_alert
from appliance.web.auth import requires
from appliance.web.auth.access import current_account
from appliance.web.health.charts import source_plots
from appliance.web.health.forms import TestAlertForm
from appliance.web.health.tiles import STATES, severity_word, title
from appliance.web.recording import record
from appliance.web.services import services

blueprint = Blueprint("health", __name__, template_folder="templates")
RECENT_CHANGES = 50
MAIL_ALERTS = "mail alerts"  # the object a test alert is about, in the audit trail


@blueprint.context_processor
def words() -> dict[str, object]:
    return {"severity_word": severity_word, "severity_class": lambda severity: STATES[severity], "Severity": Severity}


@blueprint.route("/health/<source>")
@requires(Permission.VIEW_HEALTH)
def source(source: str) -> ResponseReturnValue:
    engine, now = services().engine, datetime.now(UTC)
    states = store.current(engine)
    if source not in overview.KNOWN and not any(state.source == source for state in states):
        abort(404)
    monitor = overview.monitor_health(states, now, services().config.monitor.interval_seconds)
    return render_template(
        "health/source.html",
        source=overview.source_health(states, source),
        title=title(source),
        monitor=monitor,
        changes=store.changes(engine, source=source, limit=RECENT_CHANGES),
        plots=source_plots(engine, source, now),
    )


@blueprint.route("/health/test-alert", methods=["POST"])
@requires(Permission.EDIT_SETTINGS)
def test_alert() -> ResponseReturnValue:
    """Send the test alert through the relay; say whether it left, and why not."""
    if not TestAlertForm().validate_on_submit():
        abort(400)
    config = services().config
    account = current_account()
    requested_by = f"{account.full_name} ({account.username})" if account is not None else "?"
    try:
        send_test_alert(config, requested_by, datetime.now(UTC))
    except MailError as error:
        record_test_alert(Outcome.MINOR_FAILURE, f"test alert not sent: {error}")
        if not config.mail.enabled:
            flash(gettext("No test alert was sent: no mail relay or no recipient is configured (Settings)."), "error")
        else:
            flash(gettext("The test alert could not be sent: %(reason)s", reason=str(error)), "error")
    else:
        record_test_alert(Outcome.SUCCESS, "test alert sent")
        recipients = ", ".join(config.mail.recipients)
        flash(gettext("Test alert sent to %(recipients)s: check that it arrived.", recipients=recipients), "success")
    return redirect(url_for("home.index"))


def record_test_alert(outcome: Outcome, description: str) -> None:
    mail = services().config.mail
    alerts = ParticipantObject(
        ObjectKind.SECURITY_RESOURCE,
        MAIL_ALERTS,
        MAIL_ALERTS,
        details=(("relay", f"{mail.relay_host}:{mail.relay_port}"), ("recipients", str(len(mail.recipients)))),
    )
    record(
        EventId.SECURITY_ALERT,
        Action.EXECUTE,
        (alerts,),
        outcome=outcome,
        event_type=EventType.USE_OF_RESTRICTED_FUNCTION,
        description=description,
    )
