"""The home page's tiles: one per source of the monitor (green, amber, red, grey + a word), with the
worst finding's sentence and since when, and an amber tile when the monitor itself is silent."""

from __future__ import annotations

from dataclasses import dataclass

from flask import url_for
from flask_babel import gettext, ngettext

from appliance.monitor.findings import Severity
from appliance.monitor.overview import MonitorHealth, Overview, SourceHealth
from appliance.web.forms import lazy
from appliance.web.languages import when


@dataclass(frozen=True)
class Tile:
    """A tile of the home page; `state` is its CSS class (ok, warning, error, absent); no `url`, no link."""

    title: str
    value: str
    detail: str
    state: str
    url: str
    identifier: str
    since: str = ""
    note: str = ""


TITLES = {
    "disk": lazy("Storage"),
    "raid": lazy("RAID (mirrored disks)"),
    "smart": lazy("Disks"),
    "ups": lazy("UPS"),
    "services": lazy("Services"),
    "dicom": lazy("DICOM, worklist and HL7"),
    "time": lazy("Clock"),
    "certificate": lazy("Console certificate"),
    "backup": lazy("Last backup"),
    "qc": lazy("Last quality-control report"),
    "events": lazy("System events"),
    "outbox": lazy("Messages waiting"),
}
STATES = {Severity.OK: "ok", Severity.WARNING: "warning", Severity.CRITICAL: "error", Severity.ABSENT: "absent"}


def title(source: str) -> str:
    return str(TITLES.get(source, source))


def severity_word(severity: Severity) -> str:
    """OK, Attention, Panne, Non présent."""
    words = {
        Severity.OK: gettext("OK"),
        Severity.WARNING: gettext("Attention"),
        Severity.CRITICAL: gettext("Failure"),
        Severity.ABSENT: gettext("Not present"),
    }
    return words[severity]


def health_tiles(overview: Overview) -> list[Tile]:
    """The monitor's tile when it is silent, then one tile per source."""
    found = [source_tile(source, overview.monitor) for source in overview.sources]
    silent = monitor_tile(overview.monitor)
    return [silent, *found] if silent is not None else found


def source_tile(source: SourceHealth, monitor: MonitorHealth) -> Tile:
    url, identifier = url_for("health.source", source=source.source), f"tile-{source.source}"
    worst = source.worst
    if worst is None:
        value, detail = gettext("No information"), gettext("The monitor has recorded nothing about it yet.")
        return Tile(title(source.source), value, detail, "absent", url, identifier)
    detail = worst.message
    others = sum(1 for state in source.states if state.severity.is_problem) - (1 if worst.severity.is_problem else 0)
    if others:
        detail += " " + ngettext("(and %(num)d other problem)", "(and %(num)d other problems)", others)
    since = gettext("since %(moment)s", moment=when(worst.since)) if worst.severity is not Severity.ABSENT else ""
    note = gettext("Last checked %(moment)s", moment=when(worst.checked_at)) if monitor.stale else ""
    return Tile(
        title(source.source),
        severity_word(worst.severity),
        detail,
        STATES[worst.severity],
        url,
        identifier,
        since,
        note,
    )


def monitor_tile(monitor: MonitorHealth) -> Tile | None:
    """An amber tile when the monitor has not written for a few rounds (or never): it is down."""
    if not monitor.stale:
        return None
    if monitor.last_checked is None:
        detail = gettext("The box's monitor has recorded nothing yet: the contractor must check appliance-monitor.")
    else:
        detail = gettext(
            "The box's monitor has checked nothing since %(moment)s: the tiles show the last known state."
            " The contractor must check appliance-monitor.",
            moment=when(monitor.last_checked),
        )
    return Tile(gettext("Monitoring of the box"), gettext("Attention"), detail, "warning", "", "tile-monitor")
