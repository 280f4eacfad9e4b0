"""The services source: systemd's view of each unit (a `systemctl` on PATH printing what systemd
prints for `show`, since a test machine cannot have failed appliance units), and without systemd
the supervisor's daemons read from their PID files (real processes, one killed)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from appliance.config import development_config
from appliance.monitor import Severity, services
from appliance.monitor.sources import Context

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
SHOW = {
    "appliance-dicom.service": "LoadState=loaded\nUnitFileState=enabled\nActiveState=failed\nSubState=failed\n"
    "NRestarts=5\nStateChangeTimestamp=@1764666000",
    "appliance-hl7.service": "LoadState=loaded\nUnitFileState=enabled\nActiveState=activating\n"
    "SubState=auto-restart\nNRestarts=2\nStateChangeTimestamp=@1764666100",
    "appliance-web.service": "LoadState=loaded\nUnitFileState=enabled\nActiveState=active\nSubState=running\n"
    "NRestarts=0\nStateChangeTimestamp=@1764660000",
    "nut-monitor.service": "LoadState=loaded\nUnitFileState=disabled\nActiveState=inactive\nSubState=dead\n"
    "NRestarts=0\nStateChangeTimestamp=",
}


def fake_systemctl(folder: Path, show: dict[str, str]) -> None:
    """A `systemctl` that answers `show ... -- UNITS` as systemd does (not-found for the others)."""
    folder.mkdir(exist_ok=True)
    script = folder / "systemctl"
    blocks = {unit: f"Id={unit}\n{text}" for unit, text in show.items()}
    script.write_text(
        f"#!{sys.executable}\nimport sys\nblocks = {blocks!r}\nunits = sys.argv[sys.argv.index('--') + 1:]\n"
        "print('\\n\\n'.join(blocks.get(u, f'Id={u}\\nLoadState=not-found\\nActiveState=inactive\\n"
        "SubState=dead\\nNRestarts=0') for u in units))\n"
    )
    script.chmod(0o755)


def context(tmp_path: Path, engine: Engine, units: tuple[str, ...], now: datetime = NOW) -> Context:
    config = development_config(tmp_path / "data")
    config = dataclasses.replace(config, monitor=dataclasses.replace(config.monitor, units=units))
    return Context(config, engine, now)


def test_systemd_units_failed_restarting_running_and_unused(
    tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_systemctl(tmp_path / "bin", SHOW)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setattr(services, "HISTORY", services.RestartHistory())
    units = (*SHOW, "mdmonitor.service")
    findings = {finding.subject: finding for finding in services.read(context(tmp_path, engine, units)).findings}
    assert {subject: finding.severity for subject, finding in findings.items()} == {
        "appliance-dicom.service": Severity.CRITICAL,
        "appliance-hl7.service": Severity.WARNING,
        "appliance-web.service": Severity.OK,
        "nut-monitor.service": Severity.ABSENT,
    }, "a unit not installed (mdmonitor here) is left out"
    dicom = findings["appliance-dicom.service"]
    assert dicom.message == "L'archive DICOM est arrêté(e) sur une erreur : le prestataire doit intervenir."
    assert "failed/failed, 5 automatic restart(s)" in dicom.detail and "journalctl -u appliance-dicom" in dicom.detail
    assert dicom.since == datetime.fromtimestamp(1764666000, UTC)


def test_a_unit_restarting_twice_within_the_hour_is_a_warning(
    tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setattr(services, "HISTORY", services.RestartHistory())
    running = "LoadState=loaded\nUnitFileState=enabled\nActiveState=active\nSubState=running\nNRestarts={}"
    severities = []
    for minutes, restarts in [(0, 7), (20, 8), (40, 9), (150, 9)]:
        fake_systemctl(tmp_path / "bin", {"appliance-worker.service": running.format(restarts)})
        reading = services.read(
            context(tmp_path, engine, ("appliance-worker.service",), NOW + timedelta(minutes=minutes))
        )
        severities.append(reading.findings[0].severity)
    assert severities == [Severity.OK, Severity.OK, Severity.WARNING, Severity.OK], "7 restarts long ago are old news"


def test_without_systemd_the_supervised_daemons_are_read_from_their_pid_files(
    tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no systemctl at all
    check = context(tmp_path, engine, ("appliance-dicom.service", "appliance-hl7.service", "nginx.service"))
    run = check.config.storage.run_directory
    code = "import sys, time; from appliance.systemd import write_pid_file; from pathlib import Path; " \
        "write_pid_file(Path(sys.argv[1]), sys.argv[2]); print('ready', flush=True); time.sleep(60)"  # fmt: skip
    daemons = {
        name: subprocess.Popen([sys.executable, "-c", code, str(run), name], stdout=subprocess.PIPE, text=True)
        for name in ("appliance-dicom", "appliance-hl7")
    }
    try:
        for process in daemons.values():
            assert process.stdout is not None and process.stdout.readline() == "ready\n"
        first = {finding.subject: finding.severity for finding in services.read(check).findings}
        daemons["appliance-hl7"].kill()
        daemons["appliance-hl7"].wait()
        second = {finding.subject: finding for finding in services.read(check).findings}
    finally:
        for process in daemons.values():
            process.kill()
            process.wait()
    assert first == {"appliance-dicom.service": Severity.OK, "appliance-hl7.service": Severity.OK}
    assert second["appliance-hl7.service"].severity is Severity.CRITICAL
    assert "s'est arrêté(e) sans prévenir" in second["appliance-hl7.service"].message
    assert second["appliance-dicom.service"].severity is Severity.OK


def test_with_nothing_to_watch_the_source_is_absent(
    tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    [finding] = services.read(context(tmp_path, engine, ("appliance-dicom.service", "nginx.service"))).findings
    assert finding.severity is Severity.ABSENT
