"""What the monitor recorded, as sections of the report: RAID, SMART, UPS, services, the worklist
(and the archive and HL7 listener beside it) answering, and the free-space forecast. Read from the
monitor's store (`current`, `changes`, `measures`), never by running a check: the report says what
the box saw over the day, the incidents of the period included.

A source's current worst state gives the section's status (critical: failure); an incident of the
period now over makes it "à surveiller"; a silent monitor makes every section "à surveiller" (its
last known state is shown, dated).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine

from appliance.config import Config
from appliance.monitor import store
from appliance.monitor.alerts import LABELS
from appliance.monitor.findings import Severity
from appliance.monitor.overview import monitor_health
from appliance.monitor.store import State
from appliance.practice_time import written
from appliance.qc.report import Section, Status, worst

SECTIONS = (  # key, monitor source, title
    ("raid", "raid", "RAID (disques en miroir)"),
    ("smart", "smart", "État des disques (SMART)"),
    ("ups", "ups", "Onduleur"),
    ("services", "services", "Services du boîtier"),
    ("worklist", "dicom", "Réponse de la liste de travail, de l'archive et du lien HL7"),
    ("disk", "disk", "Espace libre et prévision"),
)
STATUSES = {Severity.OK: Status.OK, Severity.WARNING: Status.WARNING, Severity.CRITICAL: Status.FAILURE,
            Severity.ABSENT: Status.ABSENT}  # fmt: skip
GIGABYTE = 1000**3


def health_sections(config: Config, engine: Engine, period_start: datetime, now: datetime) -> list[Section]:
    states = store.current(engine)
    silent = monitor_health(states, now, config.monitor.interval_seconds)
    incidents = store.changes(engine, since=period_start, limit=1000)
    sections = []
    for key, source, title in SECTIONS:
        mine = [state for state in states if state.source == source]
        found = [change for change in incidents if change.source == source and change.severity.is_problem]
        section = section_of(key, title, mine, [f"{written(change.at)} : {LABELS[change.severity]} — {change.message}"
                                                for change in reversed(found)])  # fmt: skip
        if silent.stale:
            last = written(silent.last_checked) if silent.last_checked else "jamais"
            section = Section(key, title, worst([section.status, Status.WARNING]),
                              f"La surveillance du boîtier ne répond plus (dernier relevé : {last}).",
                              section.lines, section.numbers)  # fmt: skip
        sections.append(with_forecast(engine, section, now) if key == "disk" else section)
    return sections


def section_of(key: str, title: str, states: list[State], incidents: list[str]) -> Section:
    if not states:
        return Section(key, title, Status.WARNING, "La surveillance n'a rien relevé à ce sujet.", tuple(incidents))
    status = worst(STATUSES[state.severity] for state in states)
    lines = [f"{state.subject} : {state.message}" for state in states]
    if incidents:
        lines += ["Incidents de la période :", *incidents]
    if status is Status.ABSENT:
        return Section(key, title, Status.ABSENT, states[0].message, tuple(lines))
    if status is Status.OK and incidents:
        return Section(key, title, Status.WARNING, "Incident(s) pendant la période, rentré(s) dans l'ordre.",
                       tuple(lines), {"incidents": len(incidents)})  # fmt: skip
    problems = [state.message for state in states if STATUSES[state.severity] is status]
    summary = "Tout est normal." if status is Status.OK else problems[0]
    return Section(key, title, status, summary, tuple(lines), {"incidents": len(incidents)})


def with_forecast(engine: Engine, section: Section, now: datetime) -> Section:
    """The free space and the days left, from the monitor's latest measures."""
    numbers = dict(section.numbers)
    lines = list(section.lines)
    since = now - timedelta(days=2)
    for name, key in (("disk.data.free_bytes", "free_bytes"), ("disk.data.days_left", "days_left"),
                      ("disk.data.ingest_bytes_per_day", "ingest_bytes_per_day")):  # fmt: skip
        values = store.measures(engine, name, since)
        if values:
            numbers[key] = values[-1][1]
    if "free_bytes" in numbers:
        lines.append(f"Espace libre des images : {numbers['free_bytes'] / GIGABYTE:.1f} Go.")
    if "days_left" in numbers:
        lines.append(f"Au rythme des quatre dernières semaines : plein dans {numbers['days_left']:.0f} jours.")
    return Section(section.key, section.title, section.status, section.summary, tuple(lines), numbers)
