"""`appliance audit verify | export | purge` as an operator runs them: verify names the broken
record and exits non-zero, exports write CSV or XML and are themselves recorded (110101)."""

from __future__ import annotations

import csv
import io
import sqlite3
from pathlib import Path
from xml.etree import ElementTree

from servers import archive_config, cli, write_config

from appliance.audit.events import Action, AuditEvent, EventId, Outcome, ae, patient
from appliance.audit.trail import AuditFilter, AuditTrail
from appliance.config import load_config


def configured(tmp_path: Path) -> tuple[Path, AuditTrail]:
    config_path = write_config(tmp_path / "appliance.yaml", archive_config(tmp_path / "data", 1))
    trail = AuditTrail(load_config(config_path).audit.database)
    for patient_id in ("P1", "P2", "P1"):
        requestor = ae("FINDSCU", "10.0.0.2", True)
        trail.record(AuditEvent(EventId.QUERY, Action.EXECUTE, Outcome.SUCCESS, (requestor,), (patient(patient_id),)))
    return config_path, trail


def test_verify_then_tamper(tmp_path: Path) -> None:
    config_path, trail = configured(tmp_path)
    assert "3 record(s), seq 1..3, intact" in cli(config_path, "audit", "verify").stdout
    trail.close()
    with sqlite3.connect(trail.path) as connection:
        connection.execute("DROP TRIGGER audit_record_no_update")
        connection.execute("UPDATE audit_record SET document = replace(document, 'P2', 'P9') WHERE seq = 2")
    result = cli(config_path, "audit", "verify", check=False)
    assert result.returncode == 1
    assert "seq 2: content does not match its hash (edited)" in result.stdout


def test_exports_are_written_and_recorded(tmp_path: Path) -> None:
    config_path, trail = configured(tmp_path)
    output = tmp_path / "p1.csv"
    cli(config_path, "audit", "export", "--patient", "P1", "--output", str(output))
    rows = list(csv.DictReader(io.StringIO(output.read_text())))
    assert [row["seq"] for row in rows] == ["1", "3"]
    assert output.stat().st_mode & 0o077 == 0
    xml = cli(config_path, "audit", "export", "--format", "xml", "--since", "2020-01-01").stdout
    assert len(ElementTree.fromstring(xml).findall("Record/AuditMessage")) == 4  # 3 + the first export
    exports = trail.search(AuditFilter(event=EventId.AUDIT_LOG_USED))
    assert [dict(record.event.objects[0].details)["format"] for record in exports] == ["xml", "csv"]
    requestor = exports[-1].event.requestor
    assert requestor is not None and requestor.user_id  # the local OS user
    assert trail.verify().intact


def test_purge_keeps_recent_records(tmp_path: Path) -> None:
    config_path, trail = configured(tmp_path)
    assert "purged 0 record(s)" in cli(config_path, "audit", "purge").stdout
    assert trail.count() == 3
