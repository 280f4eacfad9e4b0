"""The disks' SMART data (H2), read with pySMART, which runs `smartctl` (`config.monitor.smartctl`)
and parses its text output: `smartctl --scan-open` to list the disks, then `smartctl -d TYPE --all
/dev/DISK` for each (pySMART does not use `--json`).

One finding per disk, the most serious of: overall health FAILED (CRITICAL); reallocated, pending or
offline-uncorrectable sectors (WARNING when not zero, CRITICAL when one of them grew over the last
24 hours); temperature from `disk_temperature_warning_celsius` (WARNING; 10 degrees more CRITICAL);
the last self-test failed (WARNING). A disk without SMART (a USB bridge that hides it) is OK, "SMART
non disponible". No smartctl on this box: ABSENT. smartd keeps doing its job (its warnings reach the
`events` source).

"Grew" compares this round's counts with the smallest of the last 24 hours' measures of the same
disk (`smart.<disk>.reallocated`, `.pending`, `.uncorrectable`, stored by the store each round):
a disk stays CRITICAL for a day after a new bad sector, rather than flipping back at the next round.
Measures: `smart.<disk>.temperature` and the three counts (ATA disks; NVMe and SCSI report others).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta

from pySMART import Device  # type: ignore[import-untyped]
from pySMART.smartctl import Smartctl  # type: ignore[import-untyped]
from pySMART.utils import smartctl_isvalid_type  # type: ignore[import-untyped]
from sqlalchemy import Engine

from appliance.monitor import store
from appliance.monitor.findings import Finding, Measure, Reading, Severity, worst
from appliance.monitor.sources import Context, absent

SOURCE = "smart"
GROWTH_WINDOW = timedelta(hours=24)
CRITICAL_ABOVE_WARNING = 10  # degrees
# ATA attribute numbers (smartmontools' drivedb names)
COUNTERS = {"reallocated": 5, "pending": 197, "uncorrectable": 198}
COUNTER_WORDS = {"reallocated": "reallocated", "pending": "pending", "uncorrectable": "offline uncorrectable"}
SCAN_LINE = re.compile(r"^(/dev/\S+)\s+-d\s+(\S+)")


@dataclass(frozen=True)
class Judgement:
    """One thing said about a disk: how serious, the sentence, the contractor's words."""

    severity: Severity
    message: str
    detail: str


def read(context: Context) -> Reading:
    """One finding per disk `smartctl --scan-open` lists; ABSENT without smartctl or disks."""
    command = shutil.which(context.config.monitor.smartctl)
    if command is None:
        return absent(
            SOURCE,
            "Pas de surveillance SMART des disques sur cette machine.",
            f"{context.config.monitor.smartctl} not found (package smartmontools)",
        )
    smartctl = Smartctl(smartctl_path=command)
    lines = smartctl.scan()
    disks = scanned_disks(lines)
    if not disks:
        refused = [line for line in lines if "failed:" in line]
        if refused:  # smartctl is there but may not open the disks (not run as root)
            message = "La surveillance SMART ne peut pas lire les disques : le prestataire doit regarder."
            return Reading([Finding(SOURCE, SOURCE, Severity.WARNING, message, "; ".join(refused))])
        return absent(SOURCE, "Aucun disque lisible par SMART sur cette machine.", f"{command} --scan-open: none")
    findings: list[Finding] = []
    measures: list[Measure] = []
    for name, interface in disks:
        finding, disk_measures = disk_reading(context, smartctl, name, interface)
        findings.append(finding)
        measures.extend(disk_measures)
    return Reading(findings, measures)


def scanned_disks(lines: list[str]) -> list[tuple[str, str]]:
    """(device, smartctl type) of every disk `smartctl --scan-open` could open; its `# ...` lines are
    the others."""
    found = []
    for line in lines:
        match = SCAN_LINE.match(line)
        if match:
            found.append((match.group(1), match.group(2)))
    return found


def disk_reading(context: Context, smartctl: Smartctl, path: str, interface: str) -> tuple[Finding, list[Measure]]:
    name = path.removeprefix("/dev/")
    if not smartctl_isvalid_type(interface):  # some USB bridges' types (usbjmicron, ...)
        return Finding(SOURCE, name, Severity.OK, "SMART non disponible.", f"{path} -d {interface}: not read"), []
    try:
        device = Device(path, interface=interface, smartctl=smartctl)
    except (ValueError, IndexError, AttributeError, OSError) as error:  # output pySMART could not parse
        message = "L'état SMART de ce disque ne peut pas être lu : le prestataire doit regarder."
        return Finding(SOURCE, name, Severity.WARNING, message, f"{path} -d {interface}: {error!r}"), []
    identity = f"{path} {device.model or '?'} serial {device.serial or '?'}"
    if not device.smart_capable and device.assessment is None:
        detail = f"{identity}: no SMART through {interface} (USB bridge or virtual disk)"
        return Finding(SOURCE, name, Severity.OK, "SMART non disponible.", detail), []
    counts = sector_counts(device)
    measures = [Measure(f"smart.{name}.{counter}", value) for counter, value in counts.items()]
    if device.temperature is not None:
        measures.append(Measure(f"smart.{name}.temperature", float(device.temperature)))
    judgements = [
        health(device),
        sectors(counts, earlier_counts(context.engine, name, context.now)),
        temperature(device.temperature, context.config.monitor.disk_temperature_warning_celsius),
        self_test(device),
    ]
    return finding(name, identity, judgements), measures


def finding(name: str, identity: str, judgements: list[Judgement]) -> Finding:
    """The disk's finding: the sentence of its most serious judgement, every judgement in the detail."""
    severity = worst(judgement.severity for judgement in judgements)
    main = next(judgement for judgement in judgements if judgement.severity is severity)
    detail = "; ".join([identity, *(judgement.detail for judgement in judgements if judgement.detail)])
    return Finding(SOURCE, name, severity, main.message, detail)


def health(device: Device) -> Judgement:
    if device.assessment == "FAIL":
        message = "Le disque annonce une panne prochaine (SMART) : il faut le remplacer rapidement."
        return Judgement(Severity.CRITICAL, message, "overall-health self-assessment FAILED")
    return Judgement(Severity.OK, "Disque en bon état.", f"health {device.assessment or 'unknown'}")


def sector_counts(device: Device) -> dict[str, float]:
    """The reallocated, pending and offline-uncorrectable sector counts of an ATA disk (raw values)."""
    counts: dict[str, float] = {}
    for counter, number in COUNTERS.items():
        attribute = device.attributes[number]
        if attribute is not None and attribute.raw_int is not None:
            counts[counter] = float(attribute.raw_int)
    return counts


def earlier_counts(engine: Engine, name: str, now: datetime) -> dict[str, float]:
    """The smallest value of each count over the last 24 hours' measures (none for a new disk)."""
    earlier = {}
    for counter in COUNTERS:
        values = [value for at, value in store.measures(engine, f"smart.{name}.{counter}", now - GROWTH_WINDOW)]
        if values:
            earlier[counter] = min(values)
    return earlier


def sectors(counts: dict[str, float], earlier: dict[str, float]) -> Judgement:
    detail = ", ".join(f"{COUNTER_WORDS[counter]} {value:.0f}" for counter, value in counts.items())
    grown = [counter for counter, value in counts.items() if counter in earlier and value > earlier[counter]]
    if grown:
        growth = ", ".join(
            f"{COUNTER_WORDS[counter]} {earlier[counter]:.0f} -> {counts[counter]:.0f}" for counter in grown
        )
        message = "Le disque se dégrade : de nouveaux secteurs défectueux sont apparus. Il faut le remplacer."
        return Judgement(Severity.CRITICAL, message, f"sectors growing within 24 h: {growth}")
    if any(counts.values()):
        message = "Le disque a des secteurs défectueux : prévoir son remplacement."
        return Judgement(Severity.WARNING, message, f"sectors: {detail}")
    return Judgement(Severity.OK, "Disque en bon état.", f"sectors: {detail}" if detail else "")


def temperature(celsius: int | None, warning: int) -> Judgement:
    if celsius is None:
        return Judgement(Severity.OK, "Disque en bon état.", "")
    detail = f"temperature {celsius} C (warning from {warning} C)"
    if celsius >= warning + CRITICAL_ABOVE_WARNING:
        message = f"Le disque est beaucoup trop chaud ({celsius} °C) : vérifier la ventilation du boîtier."
        return Judgement(Severity.CRITICAL, message, detail)
    if celsius >= warning:
        return Judgement(Severity.WARNING, f"Le disque chauffe ({celsius} °C) : vérifier la ventilation.", detail)
    return Judgement(Severity.OK, "Disque en bon état.", detail)


def self_test(device: Device) -> Judgement:
    """The most recent self-test of the disk's log (smartd runs them on schedule)."""
    if not device.tests:
        return Judgement(Severity.OK, "Disque en bon état.", "no self-test logged")
    last = device.tests[0]
    detail = f"last self-test: {last.type}, {last.status} at {last.hours} h"
    if "fail" in str(last.status).lower():
        message = "Le dernier autotest du disque a échoué : prévoir son remplacement."
        return Judgement(Severity.WARNING, message, detail)
    return Judgement(Severity.OK, "Disque en bon état.", detail)
