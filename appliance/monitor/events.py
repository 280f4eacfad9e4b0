"""The events the system tools' hooks record (mdadm --monitor, smartd, NUT's upssched, the storage
setup at boot), read from the JSON-lines file of `config.monitor.events_file` that
/usr/local/lib/appliance/appliance-event appends to: one object a line,
{"time": ISO-8601 UTC, "source", "event", "severity": critical|warning|info, "device", "detail",
"host", "context"}.

No read position is kept: each round re-reads the end of the file (its last 256 KiB: the hooks write
a few lines per incident, so that is weeks of events) and keeps the warning and critical events of
the last 24 hours. That is stateless (nothing to lose or to reset when the file is replaced), and an
event stops being shown a day after it happened. An event a later one settles is dropped: UPS back
on line after on battery, a RAID's spare active again after a failure.

One finding per (tool, event, device) with a French sentence, since its first time in the window,
the raw line of its last time in the detail; one OK finding when there is none. ABSENT when no
events file is configured or its folder does not exist (the hooks are not installed on this
machine); the folder without the file means no event yet (OK).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from appliance.monitor.findings import Finding, Reading, Severity
from appliance.monitor.sources import Context, absent

SOURCE = "events"
TAIL_BYTES = 256 * 1024
RECENT = timedelta(hours=24)
SEVERITIES = {"warning": Severity.WARNING, "critical": Severity.CRITICAL}
# (tool, event) -> the events of the same tool and device it settles
SETTLES = {
    ("nut", "online"): {"onbatt", "onbatt-long", "lowbatt", "commbad", "nocomm"},
    ("mdadm", "spareactive"): {"fail", "failspare", "degradedarray", "rebuildstarted"},
    ("mdadm", "rebuildfinished"): {"rebuildstarted"},
}
RAID_DISK_FAILED = "Un disque du RAID a été retiré ou est tombé en panne."
RAID_REBUILDING = "La reconstruction du RAID a commencé : ne pas éteindre le boîtier."
ONE_DISK_LEFT = "Un miroir de disques fonctionne sur un seul disque : les images ne sont plus en double."
SENTENCES = {
    ("mdadm", "fail"): RAID_DISK_FAILED,
    ("mdadm", "failspare"): RAID_DISK_FAILED,
    ("mdadm", "degradedarray"): ONE_DISK_LEFT,
    ("mdadm", "devicedisappeared"): "Un ensemble RAID a disparu : le prestataire doit regarder.",
    ("mdadm", "sparesmissing"): "Il manque un disque de secours au RAID.",
    ("mdadm", "rebuildstarted"): RAID_REBUILDING,
    ("storage", "rebuildstarted"): RAID_REBUILDING,
    ("storage", "data-degraded"): ONE_DISK_LEFT,
    ("storage", "root-degraded"): ONE_DISK_LEFT,
    ("storage", "no-data-disk"): "Aucun disque de données n'a été trouvé au démarrage : prévenir le prestataire.",
    ("smartd", "health"): "Un disque annonce une panne prochaine (SMART) : il faut le remplacer.",
    ("nut", "onbatt"): "Coupure de courant : le boîtier est passé sur la batterie de l'onduleur.",
    ("nut", "lowbatt"): "Batterie de l'onduleur presque vide : le boîtier s'arrête proprement.",
    ("nut", "fsd"): "L'onduleur a demandé l'arrêt du boîtier (coupure de courant prolongée).",
    ("nut", "shutdown"): "Le boîtier a été arrêté par l'onduleur (coupure de courant prolongée).",
    ("nut", "commbad"): "L'onduleur ne communique plus avec le boîtier.",
    ("nut", "nocomm"): "L'onduleur ne communique plus avec le boîtier.",
    ("nut", "replbatt"): "La batterie de l'onduleur est à remplacer.",
}
TOOLS = {"mdadm": "le RAID", "smartd": "la surveillance des disques", "nut": "l'onduleur", "storage": "les disques"}


@dataclass(frozen=True)
class Event:
    time: datetime
    source: str
    event: str
    severity: str
    device: str
    line: str

    @property
    def key(self) -> tuple[str, str, str]:
        return self.source, self.event.lower(), self.device


def read(context: Context) -> Reading:
    """The warning and critical events of the last 24 hours, one finding each."""
    path = context.config.monitor.events_file
    if path is None:
        return absent(SOURCE, "Pas d'événements des outils système sur cette machine.", "monitor.events_file is empty")
    if not path.exists():
        if not path.parent.is_dir():
            return absent(
                SOURCE, "Pas d'événements des outils système sur cette machine.", f"{path.parent} does not exist"
            )
        return Reading([quiet(f"{path} does not exist yet: no event recorded")])
    recent = [event for event in events_in(tail(path)) if context.now - RECENT <= event.time <= context.now + RECENT]
    findings = [event_finding(first, last, count) for first, last, count in outstanding(recent)]
    return Reading(findings or [quiet(f"{path}: no warning or critical event in the last 24 hours")])


def quiet(detail: str) -> Finding:
    return Finding(
        SOURCE, SOURCE, Severity.OK, "Aucun incident signalé par les outils système depuis 24 heures.", detail
    )


def tail(path: Path) -> list[str]:
    """The complete lines of the last TAIL_BYTES of `path`."""
    with path.open("rb") as file:
        size = file.seek(0, 2)
        file.seek(max(0, size - TAIL_BYTES))
        content = file.read()
    lines = content.decode("utf-8", errors="replace").splitlines()
    return lines[1:] if size > TAIL_BYTES else lines  # the first one is cut


def events_in(lines: list[str]) -> list[Event]:
    """The events the lines describe, oldest first; lines that are not an event are skipped."""
    events = []
    for line in lines:
        try:
            record: dict[str, Any] = json.loads(line)
            moment = datetime.fromisoformat(str(record["time"]))
        except (ValueError, KeyError, TypeError):
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        events.append(
            Event(
                moment,
                str(record.get("source", "")),
                str(record.get("event", "")),
                str(record.get("severity", "")),
                str(record.get("device", "")),
                line.strip(),
            )
        )
    return sorted(events, key=lambda event: event.time)


def outstanding(events: list[Event]) -> list[tuple[Event, Event, int]]:
    """(first, last, how many) of each warning or critical (tool, event, device) no later event settled."""
    open_events: dict[tuple[str, str, str], tuple[Event, Event, int]] = {}
    for event in events:
        settled = SETTLES.get((event.source, event.event.lower()), set())
        for key in [key for key in open_events if key[0] == event.source and key[2] == event.device]:
            if key[1] in settled:
                del open_events[key]
        if event.severity in SEVERITIES:
            first, _, count = open_events.get(event.key, (event, event, 0))
            open_events[event.key] = (first, event, count + 1)
    return list(open_events.values())


def event_finding(first: Event, last: Event, count: int) -> Finding:
    source, event, device = last.key
    sentence = SENTENCES.get(
        (source, event),
        f"Événement « {last.event} » signalé par {TOOLS.get(source, source)} : le prestataire doit regarder.",
    )
    times = f" ({count} fois depuis hier)" if count > 1 else ""
    subject = " ".join(part for part in (source, last.event, device) if part)
    return Finding(
        SOURCE, subject, SEVERITIES[last.severity], sentence + times, f"{count} x, last: {last.line}", first.time
    )
