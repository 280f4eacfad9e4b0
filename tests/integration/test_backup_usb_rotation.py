"""Rotating USB disks (B1), with folders standing in for the disks (`backup.usb.stand_in_directory`:
a sub-folder named by label is a disk plugged in, "mounted" as a link at the mountpoint). The real
mount path (`blkid -L`, `mount -o nodev,nosuid,noexec`) needs root and loop devices and is not
exercised here. A night with no disk is a failed run with its reason in French; the monitor says
which disk to take off site and which to plug in, and turns a failure or a stale backup red."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from backup_rig import box, ingest_of, receive_study, with_tools_on_path

from appliance.backup.history import runs
from appliance.cli import main
from appliance.config import load_config
from appliance.monitor import backup as backup_source
from appliance.monitor.findings import Severity
from appliance.monitor.sources import Context

LABELS = ["PACS-BACKUP-1", "PACS-BACKUP-2"]


@pytest.fixture(autouse=True)
def tools(monkeypatch: pytest.MonkeyPatch) -> None:
    with_tools_on_path(monkeypatch)


def findings(config_path: Path, now: datetime) -> dict[str, tuple[Severity, str]]:
    reading = backup_source.read(Context(load_config(config_path), None, now))  # type: ignore[arg-type]
    return {finding.subject: (finding.severity, finding.message) for finding in reading.findings}


def test_disks_rotate_and_a_night_without_disk_fails_clearly(tmp_path: Path) -> None:
    disks = tmp_path / "disks"
    disks.mkdir()
    path = box(tmp_path / "box", {"usb": {"labels": LABELS, "mountpoint": str(tmp_path / "media" / "backup"),
                                          "stand_in_directory": str(disks)}})  # fmt: skip
    config = load_config(path)
    receive_study(ingest_of(config), 3)
    run = ["backup", "run", "--config", str(path)]

    assert main(run) == 1
    [missing] = runs(config.backup.state_directory)
    assert not missing.succeeded and missing.target == "usb"
    assert missing.reason.startswith("Aucun disque de sauvegarde n'est branché (attendu : PACS-BACKUP-1 ou")
    now = datetime.now(UTC)
    assert findings(path, now)["backup.usb"][0] is Severity.CRITICAL

    (disks / LABELS[0]).mkdir()
    assert main(["backup", "init", "--target", "usb", "--config", str(path)]) == 0
    assert main(run) == 0
    assert runs(config.backup.state_directory)[-1].disk == LABELS[0]
    assert not (tmp_path / "media" / "backup").exists()  # unmounted after the run
    seen = findings(path, datetime.now(UTC))
    assert seen["backup.usb"][0] is Severity.OK
    assert seen["backup.usb.rotation"][1] == (
        "Le disque PACS-BACKUP-1 a servi en dernier : l'emporter hors du cabinet ; brancher le disque PACS-BACKUP-2."
    )
    assert findings(path, datetime.now(UTC) + timedelta(hours=37))["backup.usb"][0] is Severity.CRITICAL

    (disks / LABELS[0]).rename(tmp_path / "off-site-1")
    (disks / LABELS[1]).mkdir()
    assert main(run) == 1  # a new disk is refused until prepared (its key escrowed)
    assert "n'est pas préparé" in runs(config.backup.state_directory)[-1].reason
    assert main(["backup", "init", "--target", "usb", "--config", str(path)]) == 0
    assert main(run) == 0
    assert runs(config.backup.state_directory)[-1].disk == LABELS[1]

    (tmp_path / "off-site-1").rename(disks / LABELS[0])  # both plugged in: the least recently used
    assert main(run) == 0
    assert runs(config.backup.state_directory)[-1].disk == LABELS[0]
    assert main(["backup", "drill", "--config", str(path)]) == 0
    assert findings(path, datetime.now(UTC))["backup.drill"][0] is Severity.OK


def test_the_monitor_says_absent_when_nothing_is_configured(tmp_path: Path) -> None:
    path = box(tmp_path / "box", {})
    assert [severity for severity, _ in findings(path, datetime.now(UTC)).values()] == [Severity.ABSENT]
