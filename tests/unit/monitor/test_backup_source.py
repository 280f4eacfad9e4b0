"""The backup source's messages give moments in the practice's time, as the console does: a backup
finished at 23:30 UTC in winter is one of the next day at 00:30 in Paris."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from appliance.backup.history import DrillRecord, RunRecord, append
from appliance.config import development_config
from appliance.monitor import Severity, store
from appliance.monitor.backup import read
from appliance.monitor.findings import Finding, Reading
from appliance.monitor.sources import Context
from appliance.qc.backups import backup_section
from appliance.qc.report import Status

FINISHED = datetime(2026, 12, 4, 23, 30, tzinfo=UTC)


def test_the_last_backup_and_drill_are_dated_in_the_practice_s_time(tmp_path: Path, engine: Engine) -> None:
    config = development_config(tmp_path)
    state = config.backup.state_directory
    append(state, RunRecord("local", FINISHED - timedelta(minutes=5), FINISHED, True, archive="a", files=3))
    append(state, DrillRecord("local", FINISHED - timedelta(minutes=2), FINISHED, True, studies=1, files=3))
    reading = read(Context(config, engine, FINISHED + timedelta(hours=1)))
    findings = {finding.subject: finding for finding in reading.findings}
    assert findings["backup.local"].severity is Severity.OK
    assert findings["backup.local"].message == "Dernière sauvegarde (local) réussie le 05/12/2026 à 00:30."
    assert findings["backup.drill"].message.startswith("Exercice de restauration réussi le 05/12/2026 ")
    late = read(Context(config, engine, FINISHED + timedelta(hours=40)))
    [stale] = [finding for finding in late.findings if finding.subject == "backup.local"]
    assert stale.severity is Severity.CRITICAL
    assert stale.message == "La dernière sauvegarde réussie (local) date du 05/12/2026 à 00:30 : plus de 36 heures."


def test_a_target_never_backed_up_is_fine_for_36_hours_after_it_appears_then_critical(
    tmp_path: Path, engine: Engine
) -> None:
    """A new box says nothing alarming on its first day (its first nightly run is to come); one
    that has not backed up 36 hours after the monitor first reported its target is as bad as one
    whose last backup is 36 hours old."""
    config = development_config(tmp_path)
    installed = datetime(2026, 12, 4, 14, 0, tzinfo=UTC)

    def finding_at(now: datetime) -> Finding:
        reading = read(Context(config, engine, now))
        store.record(engine, "backup", reading, now)
        [found] = [finding for finding in reading.findings if finding.subject == "backup.local"]
        return found

    first = finding_at(installed)
    assert first.severity is Severity.OK
    assert first.message == "Pas encore de sauvegarde (local) : la première est prévue la nuit prochaine."
    assert finding_at(installed + timedelta(hours=35)).severity is Severity.OK
    late = finding_at(installed + timedelta(hours=37))
    assert late.severity is Severity.CRITICAL
    assert late.message == "Aucune sauvegarde (local) n'a été faite depuis le 04/12/2026 à 15:00."
    assert late.since == installed + timedelta(hours=36)
    assert finding_at(installed + timedelta(hours=38)).severity is Severity.CRITICAL  # it stays so
    [change] = [change for change in store.unalerted(engine) if change.severity is Severity.CRITICAL]
    assert change.subject == "backup.local" and change.previous is Severity.OK


def test_a_target_that_leaves_and_comes_back_is_counted_from_its_return(tmp_path: Path, engine: Engine) -> None:
    config = development_config(tmp_path)
    first = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    store.record(engine, "backup", read(Context(config, engine, first)), first)
    store.record(engine, "backup", Reading([]), first + timedelta(hours=1))  # backup switched off
    back = first + timedelta(days=3)
    store.record(engine, "backup", read(Context(config, engine, back)), back)
    [finding] = [
        f for f in read(Context(config, engine, back + timedelta(hours=2))).findings if f.subject == "backup.local"
    ]
    assert finding.severity is Severity.OK


def test_the_quality_control_report_judges_a_target_never_backed_up_by_the_same_rule(
    tmp_path: Path, engine: Engine
) -> None:
    """Unknown to the monitor: "à surveiller" as before; within 36 hours of the monitor's first
    report: fine, its first night is to come; after that: a failure, as the monitor says."""
    config = development_config(tmp_path)
    installed = datetime(2026, 12, 4, 14, 0, tzinfo=UTC)
    unknown = backup_section(config, engine, installed)
    assert unknown.status is Status.WARNING and unknown.summary == "Une cible n'a pas encore été sauvegardée."
    store.record(engine, "backup", read(Context(config, engine, installed)), installed)
    fresh = backup_section(config, engine, installed + timedelta(hours=20))
    assert fresh.status is Status.OK
    assert fresh.summary == "Pas encore de sauvegarde : la première est prévue la nuit prochaine."
    assert fresh.lines == ("local : Pas encore de sauvegarde (local) : la première est prévue la nuit prochaine.",)
    late = backup_section(config, engine, installed + timedelta(days=30))
    assert late.status is Status.FAILURE
    assert late.summary == "Une sauvegarde a échoué, manque ou date de plus de 36 heures."
    assert late.lines == ("local : Aucune sauvegarde (local) n'a été faite depuis le 04/12/2026 à 15:00.",)
