"""The backup and the restore drill in the report, read from the history `appliance backup` keeps
(`appliance.backup.history`) and judged by the monitor's own rules (`appliance.monitor.backup`:
a failed last run or a last success older than 36 hours is a failure, a failed drill too; a target
never backed up is fine for the 36 hours after the monitor first reported it, a failure after that,
and "à surveiller" when the monitor never reported it)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from appliance.backup.history import drills, last_run, rotation, runs
from appliance.backup.targets import USB, targets_of
from appliance.config import Config
from appliance.monitor.backup import drill_finding, first_reported, target_finding
from appliance.monitor.findings import Severity
from appliance.practice_time import written
from appliance.qc.report import Section, Status, worst

STATUSES = {Severity.OK: Status.OK, Severity.WARNING: Status.WARNING, Severity.CRITICAL: Status.FAILURE,
            Severity.ABSENT: Status.ABSENT}  # fmt: skip
MEGABYTE = 1000**2
BACKUP_SUMMARIES = {
    Status.OK: "Sauvegardes à jour (moins de 36 heures).",
    Status.WARNING: "Une cible n'a pas encore été sauvegardée.",
    Status.FAILURE: "Une sauvegarde a échoué, manque ou date de plus de 36 heures.",
}


def backup_section(config: Config, engine: Engine, now: datetime) -> Section:
    """Each target's last run (time, result, sizes) and the USB rotation advice."""
    title = "Sauvegarde"
    if not config.backup.enabled:
        return Section("backup", title, Status.FAILURE, "Aucune sauvegarde n'est configurée.")
    records = runs(config.backup.state_directory)
    targets = targets_of(config.backup)
    statuses, lines, numbers = [], [], {}
    first_to_come = False  # a target no run has reached yet
    for target in targets:
        never_run = last_run(records, target.name) is None
        first_to_come = first_to_come or never_run
        since = first_reported(engine, target.name) if never_run else None
        finding = target_finding(target.name, records, now, since)
        statuses.append(STATUSES[finding.severity])
        lines.append(f"{target.name} : {finding.message}")
        success = last_run(records, target.name, succeeded=True)
        if success is not None:
            hours = (now - success.finished_at).total_seconds() / 3600
            lines.append(f"  {success.files} fichiers, {success.original_bytes / MEGABYTE:.1f} Mo lus, "
                         f"{success.deduplicated_bytes / MEGABYTE:.1f} Mo ajoutés ; il y a {hours:.0f} h.")  # fmt: skip
            numbers[f"{target.name}_age_hours"] = round(hours, 2)
            numbers[f"{target.name}_deduplicated_bytes"] = success.deduplicated_bytes
    advice = rotation(records, config.backup.usb.labels) if USB in {target.name for target in targets} else None
    if advice is not None:
        lines.append(f"Disques USB : dernier utilisé {advice.last_disk or '(aucun)'}, à brancher {advice.next_disk}.")
    status = worst(statuses)
    return Section("backup", title, status, backup_summary(status, first_to_come), tuple(lines), numbers)


def backup_summary(status: Status, first_to_come: bool) -> str:
    """The section's one line; `first_to_come`: a target no run has reached yet."""
    if status is Status.OK and first_to_come:
        return "Pas encore de sauvegarde : la première est prévue la nuit prochaine."
    return BACKUP_SUMMARIES.get(status, "")


def drill_section(config: Config, now: datetime) -> Section:
    """The last restore drill: when, from where, what was checked, what failed."""
    title = "Exercice de restauration"
    if not config.backup.enabled:
        return Section("drill", title, Status.ABSENT, "Pas de sauvegarde, pas d'exercice.")
    records = drills(config.backup.state_directory)
    finding = drill_finding(records, now)
    if not records:
        return Section("drill", title, Status.WARNING, finding.message)
    last = records[-1]
    lines = [
        f"Le {written(last.finished_at)} depuis {last.target} {last.archive} : {last.studies} examens, "
        f"{last.files} fichiers, {last.bytes / MEGABYTE:.1f} Mo vérifiés en {last.seconds:.0f} s.",
        *(f"Manquant : {item}" for item in last.missing[:20]),
        *(f"Altéré : {item}" for item in last.altered[:20]),
        *(f"Index : {item}" for item in last.index_problems[:20]),
    ]
    numbers = {"studies": last.studies, "files": last.files, "seconds": round(last.seconds, 1),
               "missing": len(last.missing), "altered": len(last.altered),
               "at": last.finished_at.isoformat()}  # fmt: skip
    return Section("drill", title, STATUSES[finding.severity], finding.message, tuple(lines), numbers)
