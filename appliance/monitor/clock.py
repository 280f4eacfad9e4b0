"""The `time` source: is the box's clock synchronised (images, orders and the audit trail are dated
by it)? Read from systemd: `timedatectl show -p NTPSynchronized --value` (whatever keeps the time,
timesyncd or chrony), else the flag file systemd-timesyncd keeps, /run/systemd/timesync/synchronized.
Not synchronised: WARNING. Not booted with systemd (a container, `make run` on some machines): ABSENT.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from appliance.monitor.findings import Finding, Reading, Severity
from appliance.monitor.sources import Context, absent

SOURCE = "time"
SYSTEMD_RUN = Path("/run/systemd")  # exists when systemd is the init system (sd_booted(3))
TIMEOUT_SECONDS = 10


def read(context: Context) -> Reading:
    """One finding: clock synchronised (OK) or not (WARNING); ABSENT without systemd."""
    return reading(synchronised())


def reading(state: tuple[bool, str] | None) -> Reading:
    if state is None:
        return absent(
            SOURCE, "L'heure n'est pas surveillée sur cette machine (pas de systemd).", "not booted with systemd"
        )
    synchronised_now, detail = state
    if synchronised_now:
        return Reading([Finding(SOURCE, "clock", Severity.OK, "Horloge à l'heure (synchronisée).", detail)])
    message = (
        "L'horloge du boîtier n'est pas synchronisée : les examens pourraient être mal datés. Prévenir le prestataire."
    )
    return Reading([Finding(SOURCE, "clock", Severity.WARNING, message, detail)])


def synchronised(run: Path = SYSTEMD_RUN, command: str = "timedatectl") -> tuple[bool, str] | None:
    """(synchronised, how it was read), or None when the box was not booted with systemd."""
    if not (run / "system").is_dir():
        return None
    executable = shutil.which(command)
    if executable is not None:
        try:
            answer = subprocess.run(
                [executable, "show", "--property=NTPSynchronized", "--value"],
                capture_output=True,
                text=True,
                timeout=TIMEOUT_SECONDS,
            )
        except (OSError, subprocess.TimeoutExpired):
            answer = None
        if answer is not None and answer.returncode == 0 and answer.stdout.strip() in ("yes", "no"):
            value = answer.stdout.strip()
            return value == "yes", f"timedatectl: NTPSynchronized={value}"
    flag = run / "timesync" / "synchronized"
    return flag.exists(), f"{flag} {'exists' if flag.exists() else 'missing'}"
