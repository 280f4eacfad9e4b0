"""Findings about the box's services: each unit of `monitor.units`, from systemd (`systemctl show`),
or, for the appliance's own daemons when systemd does not run them (as under `make run`), from the
PID file each daemon keeps in `<data>/run/`.

A unit that is failed is critical; one that systemd keeps restarting (activating, auto-restart) or
that restarted twice or more in the last hour is a warning. A unit not installed on this box
(no UPS: no nut-monitor) is left out; with none at all, the source is ABSENT.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

from appliance import systemd
from appliance.monitor.findings import Finding, Reading, Severity
from appliance.monitor.sources import Context, absent

SOURCE = "services"
PROPERTIES = "Id,LoadState,UnitFileState,ActiveState,SubState,NRestarts,StateChangeTimestamp"
SYSTEMCTL_TIMEOUT_SECONDS = 15
RESTART_WINDOW = timedelta(hours=1)
RESTARTS_WARNING = 2  # automatic restarts within RESTART_WINDOW that make a warning
DAEMON_PREFIX = "appliance-"

NAMES = {
    "appliance-dicom": "L'archive DICOM",
    "appliance-worklist": "La liste de travail DICOM",
    "appliance-hl7": "Le lien HL7 avec le RIS",
    "appliance-worker": "Le travail de fond (compression, disponibilité des examens)",
    "appliance-web": "La console",
    "nginx": "Le serveur web de la console",
    "smartmontools": "La surveillance des disques (smartd)",
    "nut-monitor": "La surveillance de l'onduleur",
    "mdmonitor": "La surveillance du RAID (mdadm)",
    "systemd-timesyncd": "La mise à l'heure",
}


@dataclass(frozen=True)
class UnitState:
    """What `systemctl show` says of one unit."""

    unit: str
    load_state: str
    file_state: str  # enabled, disabled, static, ...
    active_state: str
    sub_state: str
    restarts: int
    changed_at: datetime | None


class RestartHistory:
    """The restart counts seen in the last hour, per unit, to tell a unit that keeps restarting
    from one that restarted once long ago (systemd's NRestarts only ever grows)."""

    def __init__(self) -> None:
        self.samples: dict[str, deque[tuple[datetime, int]]] = {}
        self.lock = threading.Lock()

    def restarts_within(self, unit: str, count: int, now: datetime) -> int:
        """Record `count` for `unit` at `now`; return how many restarts happened in the window."""
        with self.lock:
            samples = self.samples.setdefault(unit, deque())
            while samples and now - samples[0][0] > RESTART_WINDOW:
                samples.popleft()
            samples.append((now, count))
            oldest = samples[0][1]
        return count - oldest if count >= oldest else count


HISTORY = RestartHistory()


def read(context: Context) -> Reading:
    """The services as a monitor source."""
    units = context.config.monitor.units
    states = {state.unit: state for state in systemd_states(units)}
    findings: list[Finding] = []
    for unit in units:
        state = states.get(unit)
        if state is not None and state.load_state == "loaded":
            findings.append(unit_finding(state, HISTORY.restarts_within(unit, state.restarts, context.now)))
        elif unit.startswith(DAEMON_PREFIX):
            findings.extend(daemon_findings(unit, context.config.storage.run_directory))
    if not findings:
        return absent(SOURCE, "Aucun service surveillé n'est installé ici.", f"units: {', '.join(units)}")
    return Reading(findings)


def systemd_states(units: tuple[str, ...], systemctl: str = "systemctl") -> list[UnitState]:
    """`systemctl show` of `units` in one call; [] when systemd is not there or does not answer."""
    program = shutil.which(systemctl)
    if program is None or not units:
        return []
    command = [program, "show", "--timestamp=unix", "-p", PROPERTIES, "--", *units]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=SYSTEMCTL_TIMEOUT_SECONDS)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if result.returncode != 0:
        return []
    return [state for block in result.stdout.split("\n\n") if (state := parse_block(block)) is not None]


def parse_block(block: str) -> UnitState | None:
    """One unit's `KEY=value` lines (None for an empty block)."""
    values = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
    if "Id" not in values:
        return None
    restarts = values.get("NRestarts", "0")
    return UnitState(
        unit=values["Id"],
        load_state=values.get("LoadState", ""),
        file_state=values.get("UnitFileState", ""),
        active_state=values.get("ActiveState", ""),
        sub_state=values.get("SubState", ""),
        restarts=int(restarts) if restarts.isdigit() else 0,
        changed_at=unix_timestamp(values.get("StateChangeTimestamp", "")),
    )


def unix_timestamp(text: str) -> datetime | None:
    """`@1764666818` (systemctl --timestamp=unix) as a time; None when empty or in another form."""
    seconds = text.removeprefix("@")
    if not text.startswith("@") or not seconds.isdigit() or seconds == "0":
        return None
    return datetime.fromtimestamp(int(seconds), UTC)


def name_of(unit: str) -> str:
    base = unit.removesuffix(".service")
    return NAMES.get(base, f"Le service {base}")


def unit_finding(state: UnitState, recent_restarts: int) -> Finding:
    """The finding for a loaded unit, given its automatic restarts in the last hour."""
    name = name_of(state.unit)
    detail = (
        f"{state.unit}: {state.active_state}/{state.sub_state}, {state.restarts} automatic restart(s) since loaded, "
        f"{recent_restarts} in the last hour (journalctl -u {state.unit})"
    )
    since = state.changed_at
    if state.active_state == "failed":
        message = f"{name} est arrêté(e) sur une erreur : le prestataire doit intervenir."
        return Finding(SOURCE, state.unit, Severity.CRITICAL, message, detail, since)
    if state.active_state == "activating" and state.sub_state == "auto-restart":
        message = f"{name} redémarre après une erreur."
        return Finding(SOURCE, state.unit, Severity.WARNING, message, detail, since)
    if recent_restarts >= RESTARTS_WARNING:
        message = f"{name} a redémarré {recent_restarts} fois dans la dernière heure."
        return Finding(SOURCE, state.unit, Severity.WARNING, message, detail)
    if state.active_state == "inactive" and state.file_state == "disabled":
        message = f"{name} n'est pas utilisé(e) sur ce boîtier."
        return Finding(SOURCE, state.unit, Severity.ABSENT, message, detail)
    if state.active_state == "inactive":
        message = f"{name} est arrêté(e)."
        return Finding(SOURCE, state.unit, Severity.WARNING, message, detail, since)
    return Finding(SOURCE, state.unit, Severity.OK, f"{name} fonctionne.", detail, since)


def daemon_findings(unit: str, run_directory: Path) -> list[Finding]:
    """An appliance daemon systemd does not run (`make run`): alive when the process that wrote its
    PID file still runs; nothing when there is no PID file (not started here)."""
    name = unit.removesuffix(".service")
    path = run_directory / f"{name}{systemd.PID_SUFFIX}"
    written = systemd.read_pid_file(path)
    if written.pid <= 0:
        return []
    detail = f"{name}: PID {written.pid} in {path}"
    if not process_alive(written):
        message = f"{name_of(unit)} s'est arrêté(e) sans prévenir : le prestataire doit regarder."
        return [Finding(SOURCE, unit, Severity.CRITICAL, message, detail + " (no such process)")]
    return [Finding(SOURCE, unit, Severity.OK, f"{name_of(unit)} fonctionne.", detail)]


def process_alive(written: systemd.PidFile) -> bool:
    """Whether the process of a PID file runs (same start time: not a reused PID, not a zombie)."""
    if not written.ticks or systemd.start_ticks(written.pid) != written.ticks:
        return False
    try:
        return bool(psutil.Process(written.pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False
