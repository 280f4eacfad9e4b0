"""The console's menu: one entry per feature page, shown to the roles that may open it. An entry
whose page is not part of this application (a feature not built yet) is left out."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app, request, url_for

from appliance.accounts.roles import Permission
from appliance.web.auth.access import can
from appliance.web.forms import lazy
from appliance.web.services import services


@dataclass(frozen=True)
class Entry:
    endpoint: str
    label: str
    permission: Permission


ENTRIES = (
    Entry("home.index", lazy("Home"), Permission.VIEW_HEALTH),
    Entry("studies.search", lazy("Patients and studies"), Permission.SEARCH_PATIENTS),
    Entry("worklist.today", lazy("Worklist"), Permission.VIEW_WORKLIST),
    Entry("reconciliation.index", lazy("To reconcile"), Permission.RECONCILE),
    Entry("forward.search", lazy("Remote archives"), Permission.SEARCH_PATIENTS),
    Entry("messages.index", lazy("HL7 messages"), Permission.VIEW_HL7_LOG),
    Entry("forward.index", lazy("Forwarding"), Permission.VIEW_FORWARDING),
    Entry("qc.index", lazy("Quality control"), Permission.VIEW_HEALTH),
    Entry("backup.index", lazy("Backup"), Permission.VIEW_HEALTH),
    Entry("dose.index", lazy("Dose register"), Permission.VIEW_DOSE),
    Entry("billing.index", lazy("Archiving supplements"), Permission.VIEW_BILLING),
    Entry("jobs.index", lazy("Maintenance jobs"), Permission.RUN_JOBS),
    Entry("tiers.index", lazy("Storage tiers"), Permission.RUN_JOBS),
    Entry("retention.index", lazy("Retention"), Permission.PURGE_STUDIES),
    Entry("accounts.index", lazy("Accounts"), Permission.MANAGE_ACCOUNTS),
    Entry("setup.start", lazy("Settings"), Permission.EDIT_SETTINGS),
    Entry("audit_log.index", lazy("Audit trail"), Permission.READ_AUDIT),
    Entry("maintenance.index", lazy("Maintenance access"), Permission.MAINTENANCE_ACCESS),
)


def configure(app: Flask) -> None:
    app.context_processor(lambda: {"menu": menu(), "site_name": services().config.site_name})


def menu() -> list[dict[str, object]]:
    shown = [
        (entry, url_for(entry.endpoint))
        for entry in ENTRIES
        if entry.endpoint in current_app.view_functions and can(entry.permission)
    ]
    current = current_entry(shown)
    return [{"url": url, "label": entry.label, "active": entry is current} for entry, url in shown]


def current_entry(shown: list[tuple[Entry, str]]) -> Entry | None:
    """The entry of the page shown, marked as the current one (one at most): the entry of the page's
    blueprint; when a blueprint has several (remote archives and forwarding), the one whose address
    begins the page's."""
    blueprint = (request.endpoint or "").partition(".")[0]
    same = [(entry, url) for entry, url in shown if entry.endpoint.partition(".")[0] == blueprint]
    if len(same) > 1:
        same = [(entry, url) for entry, url in same if request.path == url or request.path.startswith(f"{url}/")]
    return same[0][0] if same else None
