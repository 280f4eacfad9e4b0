"""The software RAID arrays (H1), read from /proc/mdstat with the `mdstat` library: one finding per md
array, clean (OK), resyncing or recovering with its progress and end estimate (WARNING), degraded or
with a failed member (CRITICAL, naming the member and its disk's serial when the system shows it).

mdadm --monitor keeps doing its job (its events reach the `events` source); this only reads state.
Measure: `raid.<array>.sync_percent` while an array resyncs, recovers, reshapes or is checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mdstat  # type: ignore[import-untyped]

from appliance.monitor.findings import Finding, Measure, Reading, Severity
from appliance.monitor.sources import Context, absent

SOURCE = "raid"
SYSTEM = Path("/sys")
DEVICES = Path("/dev")
# by-id names that carry a disk's model and serial (not wwn-, which is a number without the serial)
SERIAL_PREFIXES = ("ata-", "nvme-", "scsi-", "usb-", "virtio-")
# The kernel's words for a resync line: recovery, resync and reshape copy data between members (the
# array is not safe until they end); check and repair are the monthly checkarray run (nothing wrong).
CHECKING = {"check", "repair"}
# sdb1 -> sdb, vda2 -> vda; nvme0n1p2 -> nvme0n1, mmcblk0p1 -> mmcblk0
PARTITION_NAME = re.compile(r"^(?:((?:sd|vd|hd|xvd)[a-z]+)\d+|((?:nvme\d+n\d+|mmcblk\d+))p\d+)$")


@dataclass(frozen=True)
class Progress:
    """A resync line of /proc/mdstat: `operation` (recovery, resync, reshape, check, repair, or
    resync=DELAYED while waiting its turn), percent done and minutes left when the kernel says."""

    operation: str
    percent: float | None
    minutes_left: float | None


def read(context: Context) -> Reading:
    """One finding per md array of `config.monitor.mdstat_file`; ABSENT when there is none."""
    path = context.config.monitor.mdstat_file
    if not path.exists():
        return absent(SOURCE, "Pas de RAID logiciel sur cette machine.", f"{path} does not exist")
    try:
        arrays: dict[str, dict[str, Any]] = mdstat.parse(str(path))["devices"]
    except (ValueError, IndexError, KeyError, NotImplementedError) as error:
        message = "L'état du RAID ne peut pas être lu ; le prestataire doit regarder."
        return Reading([Finding(SOURCE, SOURCE, Severity.WARNING, message, f"{path}: unreadable ({error!r})")])
    if not arrays:
        return absent(SOURCE, "Pas de RAID logiciel sur cette machine.", f"no md array in {path}")
    findings, measures = [], []
    for name, array in sorted(arrays.items()):
        findings.append(array_finding(name, array))
        progress = progress_of(array)
        if progress is not None and progress.percent is not None:
            measures.append(Measure(f"raid.{name}.sync_percent", progress.percent))
    return Reading(findings, measures)


def array_finding(name: str, array: dict[str, Any]) -> Finding:
    """The state of one array, the most serious first: stopped, failed member, rebuilding, degraded."""
    status = array["status"]
    members: dict[str, dict[str, Any]] = array["disks"]
    detail = array_detail(name, array)
    failed = sorted(member for member, flags in members.items() if flags["faulty"])
    progress = progress_of(array)
    if not array["active"]:
        message = "Un ensemble RAID est arrêté : les images qu'il porte ne sont pas accessibles."
        return Finding(SOURCE, name, Severity.CRITICAL, message, detail)
    if failed:
        message = "Un disque du RAID est en panne : il faut le remplacer (les images ne sont plus en double)."
        return Finding(SOURCE, name, Severity.CRITICAL, message, f"{detail}; failed: {members_detail(failed)}")
    if progress is not None and progress.operation not in CHECKING:
        return Finding(SOURCE, name, Severity.WARNING, rebuilding_message(progress), detail)
    if status.get("non_degraded_disks", 0) < status.get("raid_disks", 0):
        message = "Un disque manque dans le RAID : les images ne sont plus en double. Prévenir le prestataire."
        return Finding(SOURCE, name, Severity.CRITICAL, message, detail)
    if progress is not None:
        return Finding(
            SOURCE, name, Severity.OK, f"RAID en bon état (vérification en cours, {percent(progress)}).", detail
        )
    return Finding(SOURCE, name, Severity.OK, "RAID en bon état : les images sont en double.", detail)


def array_detail(name: str, array: dict[str, Any]) -> str:
    """`md0 raid1, [2/1] [U_], members sda1[0] sdb1[1](F), recovery 12.6% finish=9.5min` for the contractor."""
    status = array["status"]
    members = " ".join(
        f"{member}[{flags['number']}]{'(F)' if flags['faulty'] else ''}{'(S)' if flags['spare'] else ''}"
        for member, flags in sorted(array["disks"].items(), key=lambda item: item[1]["number"])
    )
    parts = [f"{name} {array['personality'] or 'inactive'}"]
    if "raid_disks" in status:
        synced = "".join("U" if up else "_" for up in status["synced"])
        parts.append(f"[{status['raid_disks']}/{status['non_degraded_disks']}] [{synced}]")
    parts.append(f"members {members or 'none'}")
    resync = array.get("resync")
    if resync:
        parts.append(f"{resync['operation']} {resync['progress']} finish={resync['finish']} speed={resync['speed']}")
    return ", ".join(parts)


def progress_of(array: dict[str, Any]) -> Progress | None:
    resync = array.get("resync")
    if not resync:
        return None
    operation = str(resync["operation"])
    return Progress(operation, number_in(resync.get("progress")), number_in(resync.get("finish")))


def number_in(text: object) -> float | None:
    """12.6 from "12.6%", 9.5 from "9.5min"; None when absent."""
    match = re.match(r"\s*(\d+(?:\.\d+)?)", str(text or ""))
    return float(match.group(1)) if match else None


def rebuilding_message(progress: Progress) -> str:
    if progress.percent is None:  # resync=DELAYED / PENDING: another array of the same disks goes first
        return "Le RAID attend pour se reconstruire (un autre ensemble passe d'abord) : ne pas éteindre le boîtier."
    end = f", fin estimée dans {duration(progress.minutes_left)}" if progress.minutes_left is not None else ""
    return f"Le RAID se reconstruit : {percent(progress)} faits{end}. Ne pas éteindre le boîtier."


def percent(progress: Progress) -> str:
    return f"{progress.percent:.1f} %".replace(".", ",") if progress.percent is not None else "?"


def duration(minutes: float) -> str:
    """About how long, in French: "environ 10 min", "environ 2 h 15"."""
    whole = round(minutes)
    if whole < 1:
        return "moins d'une minute"
    if whole < 60:
        return f"environ {whole} min"
    return f"environ {whole // 60} h {whole % 60:02d}"


def members_detail(members: list[str]) -> str:
    """`sdb1 (disk sdb, serial WD-WCC6Y0AB1234)` for each member, the serial when the system shows it."""
    described = []
    for member in members:
        disk = parent_disk(member)
        serial = disk_serial(disk)
        described.append(f"{member} (disk {disk}{f', serial {serial}' if serial else ''})")
    return ", ".join(described)


def parent_disk(member: str, system: Path = SYSTEM) -> str:
    """The whole disk a partition belongs to (`sdb` for `sdb1`, `nvme0n1` for `nvme0n1p2`): from /sys,
    else from the kernel's naming (a disk pulled out is gone from /sys); the member itself when it is
    a whole disk."""
    entry = system / "class" / "block" / member
    if (entry / "partition").exists():
        return entry.resolve().parent.name
    named = PARTITION_NAME.match(member)
    return (named.group(1) or named.group(2)) if named else member


def disk_serial(disk: str, system: Path = SYSTEM, devices: Path = DEVICES) -> str | None:
    """The serial number of `disk` (a name like `sdb`): /sys/block/<disk>/device/serial, else the
    end of its /dev/disk/by-id name (`ata-MODEL_SERIAL`); None when neither says (or in a fixture)."""
    try:
        serial = (system / "block" / disk / "device" / "serial").read_text(encoding="utf-8").strip()
    except OSError:
        serial = ""
    if serial:
        return serial
    by_id = devices / "disk" / "by-id"
    try:
        links = sorted(by_id.iterdir())
    except OSError:
        return None
    for link in links:
        if link.name.startswith(SERIAL_PREFIXES) and "-part" not in link.name and link.resolve().name == disk:
            return link.name.rsplit("_", 1)[-1]
    return None
