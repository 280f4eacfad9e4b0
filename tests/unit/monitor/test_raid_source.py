"""The RAID source reads recorded /proc/mdstat files (RAID-1 of two partitions, as the kernel prints
them; a test machine cannot degrade an array) through the `mdstat` library."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from appliance.config import development_config
from appliance.monitor import Severity
from appliance.monitor.raid import disk_serial, parent_disk, read
from appliance.monitor.sources import Context

MDSTAT = Path(__file__).parents[2] / "data" / "monitor" / "mdstat"


def raid_context(tmp_path: Path, engine: Engine, mdstat_file: Path) -> Context:
    config = development_config(tmp_path / "data")
    config = dataclasses.replace(config, monitor=dataclasses.replace(config.monitor, mdstat_file=mdstat_file))
    return Context(config, engine, datetime.now(UTC))


def test_a_clean_mirror_is_ok(tmp_path: Path, engine: Engine) -> None:
    reading = read(raid_context(tmp_path, engine, MDSTAT / "clean.mdstat"))
    [finding] = reading.findings
    assert (finding.source, finding.subject, finding.severity) == ("raid", "md0", Severity.OK)
    assert "en double" in finding.message
    assert "md0 raid1, [2/2] [UU], members sda1[0] sdb1[1]" in finding.detail
    assert reading.measures == []


def test_a_failed_member_is_critical_and_named(tmp_path: Path, engine: Engine) -> None:
    [finding] = read(raid_context(tmp_path, engine, MDSTAT / "degraded.mdstat")).findings
    assert finding.severity is Severity.CRITICAL
    assert "en panne" in finding.message and "remplacer" in finding.message
    assert "[2/1] [U_]" in finding.detail and "failed: sdb1 (disk sdb" in finding.detail
    assert parent_disk("sdb1") == "sdb" and parent_disk("nvme1n1p2") == "nvme1n1" and parent_disk("sdc") == "sdc"


def test_a_resync_is_a_warning_with_its_progress(tmp_path: Path, engine: Engine) -> None:
    reading = read(raid_context(tmp_path, engine, MDSTAT / "resync.mdstat"))
    [finding] = reading.findings
    assert finding.severity is Severity.WARNING
    assert finding.message == (
        "Le RAID se reconstruit : 43,8 % faits, fin estimée dans environ 2 min. Ne pas éteindre le boîtier."
    )
    assert [(measure.name, measure.value) for measure in reading.measures] == [("raid.md0.sync_percent", 43.8)]


def test_a_recovery_onto_a_new_disk_beside_a_clean_array(tmp_path: Path, engine: Engine) -> None:
    reading = read(raid_context(tmp_path, engine, MDSTAT / "recovery.mdstat"))
    assert [(finding.subject, finding.severity) for finding in reading.findings] == [
        ("md0", Severity.OK),
        ("md1", Severity.WARNING),
    ]
    recovering = reading.findings[1]
    assert "12,6 % faits, fin estimée dans environ 1 h 11" in recovering.message
    assert "recovery 12.6% finish=71.3min" in recovering.detail
    assert [(measure.name, measure.value) for measure in reading.measures] == [("raid.md1.sync_percent", 12.6)]


def test_two_arrays_one_running_on_a_single_disk(tmp_path: Path, engine: Engine) -> None:
    findings = read(raid_context(tmp_path, engine, MDSTAT / "two-arrays.mdstat")).findings
    assert [(finding.subject, finding.severity) for finding in findings] == [
        ("md0", Severity.OK),
        ("md1", Severity.CRITICAL),
    ]
    assert "Un disque manque" in findings[1].message and "members sda2[0]" in findings[1].detail


def test_the_monthly_check_is_not_a_problem(tmp_path: Path, engine: Engine) -> None:
    reading = read(raid_context(tmp_path, engine, MDSTAT / "check.mdstat"))
    [finding] = reading.findings
    assert finding.severity is Severity.OK and "vérification en cours, 2,1 %" in finding.message
    assert [measure.name for measure in reading.measures] == ["raid.md1.sync_percent"]


def test_no_raid_is_absent(tmp_path: Path, engine: Engine) -> None:
    for missing in (tmp_path / "no-mdstat", MDSTAT / "empty.mdstat"):
        [finding] = read(raid_context(tmp_path, engine, missing)).findings
        assert finding.severity is Severity.ABSENT
        assert finding.message == "Pas de RAID logiciel sur cette machine."


def test_an_unreadable_mdstat_is_a_warning_not_an_exception(tmp_path: Path, engine: Engine) -> None:
    garbled = tmp_path / "mdstat"
    garbled.write_text("Personalities : [raid1]\nmd0 : active raid1 sda1[0]\n      nonsense\nunused devices: <none>\n")
    [finding] = read(raid_context(tmp_path, engine, garbled)).findings
    assert finding.severity is Severity.WARNING and "ne peut pas être lu" in finding.message


def test_the_serial_of_a_member_from_sys_or_by_id(tmp_path: Path) -> None:
    """The disk behind a partition, and its serial from /sys (NVMe) or a /dev/disk/by-id name (SATA)."""
    system, devices = tmp_path / "sys", tmp_path / "dev"
    disk_folder = system / "devices" / "pci0000:00" / "ata2" / "block" / "sdb"
    (disk_folder / "sdb1").mkdir(parents=True)
    (disk_folder / "sdb1" / "partition").write_text("1\n")
    (system / "class" / "block").mkdir(parents=True)
    (system / "class" / "block" / "sdb1").symlink_to(disk_folder / "sdb1")
    (devices / "disk" / "by-id").mkdir(parents=True)
    (devices / "sdb").touch()
    (devices / "sdb1").touch()
    by_id = devices / "disk" / "by-id"
    (by_id / "wwn-0x50014ee2b5e1f2a1").symlink_to("../../sdb")
    (by_id / "ata-WDC_WD20EFRX-68EUZN0_WD-WCC4M3PL0A7Z-part1").symlink_to("../../sdb1")
    (by_id / "ata-WDC_WD20EFRX-68EUZN0_WD-WCC4M3PL0A7Z").symlink_to("../../sdb")
    assert parent_disk("sdb1", system) == "sdb"
    assert disk_serial("sdb", system, devices) == "WD-WCC4M3PL0A7Z"
    (system / "block" / "nvme0n1" / "device").mkdir(parents=True)
    (system / "block" / "nvme0n1" / "device" / "serial").write_text("S4EWNX0R123456      \n")
    assert disk_serial("nvme0n1", system, devices) == "S4EWNX0R123456"
    assert disk_serial("sdz", system, devices) is None
