"""The home page, the dashboard (H5): what needs doing today (studies to reconcile, messages to the
RIS and the modalities) and the box's health as tiles (green, amber, red, grey + a word), read from
what `appliance-monitor` stored, never by running a check; then the plots (disk use and its
forecast, images and studies received per day, the UPS's last outage), and for administrators the
"send a test alert" button. See `appliance.web.health`."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, current_app, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext, ngettext

from appliance.accounts.roles import Permission
from appliance.archive.reconciliation import count_unreconciled
from appliance.monitor import outbox, overview, store
from appliance.monitor.findings import Severity, worst
from appliance.web.auth import requires
from appliance.web.auth.access import can
from appliance.web.health.charts import dashboard_plots
from appliance.web.health.forms import TestAlertForm
from appliance.web.health.tiles import Tile, health_tiles
from appliance.web.services import services

blueprint = Blueprint("home", __name__)


@blueprint.route("/")
@requires(Permission.VIEW_HEALTH)
def index() -> ResponseReturnValue:
    now = datetime.now(UTC)
    engine, config = services().engine, services().config
    health = overview.overview(store.current(engine), now, config.monitor.interval_seconds)
    return render_template(
        "home.html",
        tiles=tiles(),
        health_tiles=health_tiles(health),
        plots=dashboard_plots(engine, now),
        test_alert=TestAlertForm() if can(Permission.EDIT_SETTINGS) else None,
        recipients=config.mail.recipients,
    )


def tiles() -> list[Tile]:
    found = [messages_tile()]
    if can(Permission.RECONCILE):
        found.insert(0, reconciliation_tile())
    return found


def reconciliation_tile() -> Tile:
    waiting = count_unreconciled(services().engine)
    shown = str(waiting)
    detail = ngettext("study without its order", "studies without their order", waiting)
    url = url_for("reconciliation.index") if has_endpoint("reconciliation.index") else url_for("home.index")
    return Tile(gettext("To reconcile"), shown, detail, "warning" if waiting else "ok", url, "tile-reconciliation")


def messages_tile() -> Tile:
    findings = [finding for finding in outbox.check(services().engine) if finding.severity.is_problem]
    found = worst(finding.severity for finding in findings)
    state = {Severity.WARNING: "warning", Severity.CRITICAL: "error"}.get(found, "ok")
    value = gettext("OK") if state == "ok" else gettext("Attention") if state == "warning" else gettext("Failure")
    detail = findings[0].message if findings else gettext("Everything was delivered.")
    if has_endpoint("messages.index") and can(Permission.VIEW_HL7_LOG):
        url = url_for("messages.index")
    else:
        url = url_for("health.source", source="outbox")
    return Tile(gettext("Messages to the RIS and modalities"), value, detail, state, url, "tile-messages")


def has_endpoint(endpoint: str) -> bool:
    return endpoint in current_app.view_functions
