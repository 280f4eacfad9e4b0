"""The backup as the monitor sees it (B1, B2): the last run to each target and the last restore
drill, read from the history `appliance backup` keeps (`appliance.backup.history`).

A failed last run, or a last success older than 36 hours, is critical (the issue's rule: the
practice learns of it the next morning). A target never backed up yet is fine for the first 36 hours
the monitor reports it (a new box, a new target: its first nightly run is to come, so no alert on
the first day), then critical, as a last success that old would be. A failed drill is critical, no
drill for 40 days a warning. No target configured: absent. Moments are read in
the practice's time (`appliance.practice_time`), as everywhere the practice reads them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine

from appliance.backup.history import DrillRecord, RunRecord, drills, last_run, rotation, runs
from appliance.backup.targets import USB, targets_of
from appliance.monitor.findings import Finding, Measure, Reading, Severity
from appliance.monitor.sources import Context, absent
from appliance.monitor.store import appeared_at
from appliance.practice_time import day_of, written

SOURCE = "backup"
MAXIMUM_AGE = timedelta(hours=36)
DRILL_MAXIMUM_AGE = timedelta(days=40)


def read(context: Context) -> Reading:
    backup = context.config.backup
    if not backup.enabled:
        return absent(SOURCE, "Aucune sauvegarde n'est configurée.")
    records = runs(backup.state_directory)
    findings, measures = [], []
    for target in targets_of(backup):
        since = reported_since(context, target.name, records)
        findings.append(target_finding(target.name, records, context.now, since))
        success = last_run(records, target.name, succeeded=True)
        if success is not None:
            hours = (context.now - success.finished_at).total_seconds() / 3600
            measures += [Measure(f"backup.{target.name}.age_hours", round(hours, 2)),
                         Measure(f"backup.{target.name}.deduplicated_bytes", success.deduplicated_bytes)]  # fmt: skip
    findings.append(drill_finding(drills(backup.state_directory), context.now))
    if USB in (target.name for target in targets_of(backup)):
        findings.append(rotation_finding(records, backup.usb.labels))
    return Reading(findings, measures)


def reported_since(context: Context, target: str, records: list[RunRecord]) -> datetime | None:
    """When the monitor began reporting a target no run has reached (now, at its first report);
    None for a target with runs."""
    if last_run(records, target) is not None:
        return None
    return first_reported(context.engine, target) or context.now


def first_reported(engine: Engine, target: str) -> datetime | None:
    """When the monitor last began reporting `target` (`store.appeared_at`); None when it never did."""
    return appeared_at(engine, SOURCE, f"backup.{target}")


def target_finding(
    target: str, records: list[RunRecord], now: datetime, reported_since: datetime | None = None
) -> Finding:
    """The target's state; one never backed up is judged from when the monitor began reporting
    it (`reported_since`), or is a warning when that is not known (a monitor that never reported it)."""
    subject = f"backup.{target}"
    last = last_run(records, target)
    success = last_run(records, target, succeeded=True)
    if last is None and reported_since is not None:
        return never_backed_up(target, reported_since, now)
    if last is None:
        return Finding(SOURCE, subject, Severity.WARNING, f"Aucune sauvegarde ({target}) n'a encore été faite.")
    if not last.succeeded:
        message = f"La dernière sauvegarde ({target}) a échoué : {last.reason}"
        return Finding(SOURCE, subject, Severity.CRITICAL, message, last.detail, since=last.finished_at)
    assert success is not None
    when = written(success.finished_at)
    if now - success.finished_at > MAXIMUM_AGE:
        return Finding(SOURCE, subject, Severity.CRITICAL,
                       f"La dernière sauvegarde réussie ({target}) date du {when} : plus de 36 heures.",
                       since=success.finished_at + MAXIMUM_AGE)  # fmt: skip
    detail = f"archive {success.archive}, {success.files} files, {success.deduplicated_bytes} bytes added"
    return Finding(SOURCE, subject, Severity.OK, f"Dernière sauvegarde ({target}) réussie le {when}.", detail)


def never_backed_up(target: str, reported_since: datetime, now: datetime) -> Finding:
    """A target no run has reached: its first is expected within 36 hours of its first report."""
    subject = f"backup.{target}"
    if now - reported_since <= MAXIMUM_AGE:
        message = f"Pas encore de sauvegarde ({target}) : la première est prévue la nuit prochaine."
        return Finding(SOURCE, subject, Severity.OK, message)
    return Finding(SOURCE, subject, Severity.CRITICAL,
                   f"Aucune sauvegarde ({target}) n'a été faite depuis le {written(reported_since)}.",
                   since=reported_since + MAXIMUM_AGE)  # fmt: skip


def drill_finding(records: list[DrillRecord], now: datetime) -> Finding:
    subject = "backup.drill"
    if not records:
        return Finding(SOURCE, subject, Severity.OK, "Aucun exercice de restauration n'a encore eu lieu.")
    last = records[-1]
    counts = f"{last.studies} examens, {last.files} fichiers vérifiés en {last.seconds:.0f} s"
    if not last.succeeded:
        detail = "\n".join([last.detail, *last.index_problems, *last.missing[:20], *last.altered[:20]]).strip()
        return Finding(SOURCE, subject, Severity.CRITICAL, last.reason or "L'exercice de restauration a échoué.",
                       detail, since=last.finished_at)  # fmt: skip
    if now - last.finished_at > DRILL_MAXIMUM_AGE:
        return Finding(SOURCE, subject, Severity.WARNING,
                       f"Le dernier exercice de restauration date du {day_of(last.finished_at):%d/%m/%Y}.")  # fmt: skip
    return Finding(SOURCE, subject, Severity.OK,
                   f"Exercice de restauration réussi le {day_of(last.finished_at):%d/%m/%Y} ({counts}).")  # fmt: skip


def rotation_finding(records: list[RunRecord], labels: tuple[str, ...]) -> Finding:
    """Which disk to take off site and which to plug in (OK: information for the secretary)."""
    advice = rotation(records, labels)
    assert advice is not None
    if not advice.last_disk:
        return Finding(SOURCE, "backup.usb.rotation", Severity.OK, f"Brancher le disque {advice.next_disk}.")
    message = (f"Le disque {advice.last_disk} a servi en dernier : l'emporter hors du cabinet ; "
               f"brancher le disque {advice.next_disk}.")  # fmt: skip
    return Finding(SOURCE, "backup.usb.rotation", Severity.OK, message)
