"""The home page: what needs doing today, as tiles (green, amber, red + a word), with room for the
box's health tiles (RAID, disks, UPS, backup: their own issue) which plug in as more tiles."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, current_app, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext, ngettext

from appliance.accounts.roles import Permission
from appliance.archive.reconciliation import count_unreconciled
from appliance.monitor import outbox
from appliance.monitor.findings import Severity, worst
from appliance.web.auth import requires
from appliance.web.auth.access import can
from appliance.web.services import services

blueprint = Blueprint("home", __name__)


@dataclass(frozen=True)
class Tile:
    title: str
    value: str
    detail: str
    state: str  # ok, warning, error
    url: str


@blueprint.route("/")
@requires(Permission.VIEW_HEALTH)
def index() -> ResponseReturnValue:
    return render_template("home.html", tiles=tiles())


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
    return Tile(gettext("To reconcile"), shown, detail, "warning" if waiting else "ok", url)


def messages_tile() -> Tile:
    findings = [finding for finding in outbox.check(services().engine) if finding.severity.is_problem]
    found = worst(finding.severity for finding in findings)
    state = {Severity.WARNING: "warning", Severity.CRITICAL: "error"}.get(found, "ok")
    value = gettext("OK") if state == "ok" else gettext("Attention") if state == "warning" else gettext("Failure")
    detail = findings[0].message if findings else gettext("Everything was delivered.")
    url = url_for("messages.index") if has_endpoint("messages.index") and can(Permission.VIEW_HL7_LOG) else "#"
    return Tile(gettext("Messages to the RIS and modalities"), value, detail, state, url)


def has_endpoint(endpoint: str) -> bool:
    return endpoint in current_app.view_functions
