"""The `time` source asks systemd whether the clock is synchronised: here a stand-in /run/systemd
and a stand-in timedatectl that answers as the real one does (`yes` / `no`)."""

from __future__ import annotations

from pathlib import Path

from appliance.monitor import Severity
from appliance.monitor.clock import reading, synchronised


def fake_timedatectl(folder: Path, answer: str) -> str:
    script = folder / "timedatectl"
    script.write_text(f'#!/bin/sh\n[ "$*" = "show --property=NTPSynchronized --value" ] && echo {answer}\n')
    script.chmod(0o755)
    return str(script)


def test_synchronised_or_not_as_timedatectl_says(tmp_path: Path) -> None:
    run = tmp_path / "run-systemd"
    (run / "system").mkdir(parents=True)
    state = synchronised(run, fake_timedatectl(tmp_path, "yes"))
    assert state == (True, "timedatectl: NTPSynchronized=yes")
    [finding] = reading(state).findings
    assert (finding.source, finding.subject, finding.severity) == ("time", "clock", Severity.OK)
    [finding] = reading(synchronised(run, fake_timedatectl(tmp_path, "no"))).findings
    assert finding.severity is Severity.WARNING and "pas synchronisée" in finding.message


def test_without_timedatectl_the_timesyncd_flag_file(tmp_path: Path) -> None:
    run = tmp_path / "run-systemd"
    (run / "system").mkdir(parents=True)
    assert synchronised(run, "no-such-timedatectl") == (False, f"{run}/timesync/synchronized missing")
    (run / "timesync").mkdir()
    (run / "timesync" / "synchronized").touch()
    assert synchronised(run, "no-such-timedatectl") == (True, f"{run}/timesync/synchronized exists")


def test_without_systemd_the_source_is_absent(tmp_path: Path) -> None:
    state = synchronised(tmp_path / "no-systemd", fake_timedatectl(tmp_path, "yes"))
    assert state is None
    [finding] = reading(state).findings
    assert finding.severity is Severity.ABSENT
