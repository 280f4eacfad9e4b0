"""The backup source's messages give moments in the practice's time, as the console does: a backup
finished at 23:30 UTC in winter is one of the next day at 00:30 in Paris."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from appliance.backup.history import DrillRecord, RunRecord, append
from appliance.config import development_config
from appliance.monitor import Severity
from appliance.monitor.backup import read
from appliance.monitor.sources import Context

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
