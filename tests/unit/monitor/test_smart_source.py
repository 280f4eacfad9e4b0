"""The SMART source runs pySMART for real against a recorded `smartctl`: a script named by
`monitor.smartctl` that prints recorded smartctl 7.3 text outputs for the arguments pySMART passes
(`--scan-open`, then `-d TYPE --all /dev/DISK`; pySMART parses text, not `--json`). Four disks: a
healthy one, a failing one, one whose reallocated sectors grow between two rounds, and a USB bridge
that hides SMART. The growth is seen through the measures the store keeps."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from appliance.config import development_config
from appliance.monitor import Severity, store
from appliance.monitor.smart import read
from appliance.monitor.sources import Context

RECORDED = Path(__file__).parents[2] / "data" / "monitor" / "smartctl"
DISKS = {"sda": "healthy.txt", "sdb": "failing.txt", "sdc": "growing-1.txt", "sdd": "usb-bridge.txt"}


@pytest.fixture()
def smartctl(tmp_path: Path) -> Path:
    """A folder with the fake smartctl and the output each disk gives now (`<disk>.txt`)."""
    folder = tmp_path / "smartctl"
    folder.mkdir()
    shutil.copyfile(RECORDED / "scan-open.txt", folder / "scan-open.txt")
    for disk, recorded in DISKS.items():
        shutil.copyfile(RECORDED / recorded, folder / f"{disk}.txt")
    script = folder / "smartctl"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {folder}/calls\n'
        'case "$*" in\n'
        f"  *--scan-open*) exec cat {folder}/scan-open.txt ;;\n"
        f'  *--all*) for last; do :; done; exec cat "{folder}/$(basename "$last").txt" ;;\n'
        "  *) exit 2 ;;  # -l sataphy, -l sasphy: not recorded (pySMART then keeps the scanned type)\n"
        "esac\n"
    )
    script.chmod(0o755)
    return folder


def smart_context(tmp_path: Path, engine: Engine, command: str, now: datetime, warning_celsius: int = 55) -> Context:
    config = development_config(tmp_path / "data")
    monitor = dataclasses.replace(config.monitor, smartctl=command, disk_temperature_warning_celsius=warning_celsius)
    return Context(dataclasses.replace(config, monitor=monitor), engine, now)


def test_each_disk_is_judged(tmp_path: Path, engine: Engine, smartctl: Path) -> None:
    reading = read(smart_context(tmp_path, engine, str(smartctl / "smartctl"), datetime.now(UTC)))
    findings = {finding.subject: finding for finding in reading.findings}
    assert {subject: finding.severity for subject, finding in findings.items()} == {
        "sda": Severity.OK,
        "sdb": Severity.CRITICAL,
        "sdc": Severity.WARNING,  # 8 reallocated sectors, not known to grow yet
        "sdd": Severity.OK,
    }
    assert findings["sda"].message == "Disque en bon état."
    assert "WD-WCC4M1KXJ6XY" in findings["sda"].detail and "temperature 34 C" in findings["sda"].detail
    assert "panne prochaine" in findings["sdb"].message
    assert "FAILED" in findings["sdb"].detail and "Completed: read failure" in findings["sdb"].detail
    assert "reallocated 3520, pending 48, offline uncorrectable 48" in findings["sdb"].detail
    assert "secteurs défectueux" in findings["sdc"].message
    assert findings["sdd"].message == "SMART non disponible." and "NA8HJ2KQ" in findings["sdd"].detail
    measures = {measure.name: measure.value for measure in reading.measures}
    assert measures["smart.sda.temperature"] == 34 and measures["smart.sdb.reallocated"] == 3520
    assert measures["smart.sdc.reallocated"] == 8 and not any(name.startswith("smart.sdd") for name in measures)
    calls = (smartctl / "calls").read_text().splitlines()
    assert calls[0] == "--scan-open" and "-d sat --all /dev/sda" in calls and "-d scsi --all /dev/sdd" in calls


def test_reallocated_sectors_growing_between_two_rounds_is_critical(
    tmp_path: Path, engine: Engine, smartctl: Path
) -> None:
    first = datetime.now(UTC) - timedelta(hours=1)
    reading = read(smart_context(tmp_path, engine, str(smartctl / "smartctl"), first))
    store.record(engine, "smart", reading, first)
    shutil.copyfile(RECORDED / "growing-2.txt", smartctl / "sdc.txt")  # 8 -> 24 reallocated, 2 pending
    later = read(smart_context(tmp_path, engine, str(smartctl / "smartctl"), first + timedelta(hours=1)))
    [grown] = [finding for finding in later.findings if finding.subject == "sdc"]
    assert grown.severity is Severity.CRITICAL
    assert "se dégrade" in grown.message
    assert "reallocated 8 -> 24, pending 0 -> 2" in grown.detail
    # A day later with no new bad sector, the disk is back to a warning.
    next_day = read(smart_context(tmp_path, engine, str(smartctl / "smartctl"), first + timedelta(hours=26)))
    assert {finding.subject: finding.severity for finding in next_day.findings}["sdc"] is Severity.WARNING


def test_temperature_against_the_configured_threshold(tmp_path: Path, engine: Engine, smartctl: Path) -> None:
    command, now = str(smartctl / "smartctl"), datetime.now(UTC)
    warm = {finding.subject: finding for finding in read(smart_context(tmp_path, engine, command, now, 30)).findings}
    assert warm["sda"].severity is Severity.WARNING and warm["sda"].message.startswith("Le disque chauffe (34 °C)")
    hot = {finding.subject: finding for finding in read(smart_context(tmp_path, engine, command, now, 24)).findings}
    assert hot["sda"].severity is Severity.CRITICAL and "beaucoup trop chaud" in hot["sda"].message


def test_no_smartctl_is_absent(tmp_path: Path, engine: Engine) -> None:
    [finding] = read(smart_context(tmp_path, engine, "no-such-smartctl", datetime.now(UTC))).findings
    assert finding.severity is Severity.ABSENT
    assert "no-such-smartctl not found" in finding.detail


def test_no_disk_is_absent_and_disks_it_may_not_open_a_warning(tmp_path: Path, engine: Engine, smartctl: Path) -> None:
    (smartctl / "scan-open.txt").write_text("")
    [finding] = read(smart_context(tmp_path, engine, str(smartctl / "smartctl"), datetime.now(UTC))).findings
    assert finding.severity is Severity.ABSENT
    (smartctl / "scan-open.txt").write_text("# /dev/sda -d sat # /dev/sda [SAT], open failed: Permission denied\n")
    [finding] = read(smart_context(tmp_path, engine, str(smartctl / "smartctl"), datetime.now(UTC))).findings
    assert finding.severity is Severity.WARNING and "Permission denied" in finding.detail


def test_a_disk_smartctl_says_nothing_about_does_not_hide_the_others(
    tmp_path: Path, engine: Engine, smartctl: Path
) -> None:
    (smartctl / "sdb.txt").write_text("")  # smartctl printed nothing for it
    findings = {
        finding.subject: finding
        for finding in read(smart_context(tmp_path, engine, str(smartctl / "smartctl"), datetime.now(UTC))).findings
    }
    assert findings["sda"].severity is Severity.OK and findings["sdd"].severity is Severity.OK
    assert (findings["sdb"].severity, findings["sdb"].message) == (Severity.OK, "SMART non disponible.")
