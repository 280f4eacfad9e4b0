"""The dicom source against the real daemons in production mode: the archive and the worklist
admit the monitor's C-ECHO (an AE title no peer list names, from the loopback address), the HL7
listener answers its probe without storing anything; a stopped listener is critical."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from servers import Daemon, archive_config, free_port, write_config
from sqlalchemy import func, select

from appliance.config import load_config
from appliance.db import create_index_engine
from appliance.db.schema import hl7_inbox
from appliance.monitor import Severity
from appliance.monitor.dicom import read
from appliance.monitor.sources import Context


@pytest.fixture()
def daemons(tmp_path: Path) -> Iterator[dict[str, Any]]:
    config: dict[str, Any] = archive_config(tmp_path / "data", free_port())
    config["worklist"] = {"bind_address": "127.0.0.1", "port": 0}
    config["hl7"] = {"bind_address": "127.0.0.1", "port": 0, "accepted_sending_facilities": ["RIS_CABINET"]}
    path = write_config(tmp_path / "appliance.yaml", config)
    started = {
        name: Daemon(module, path, tmp_path / f"{name}.log").start()
        for name, module in [
            ("dicom", "appliance.daemons.archive"),
            ("worklist", "appliance.daemons.worklist"),
            ("hl7", "appliance.daemons.hl7"),
        ]
    }
    for section in ("dicom", "worklist", "hl7"):
        config[section] = {**config.get(section, {}), "port": started[section].port}
    yield {"daemons": started, "config": write_config(tmp_path / "monitor.yaml", config)}
    for daemon in started.values():
        daemon.stop()


def test_the_archive_worklist_and_hl7_listener_answer_the_monitor(daemons: dict[str, Any]) -> None:
    config = load_config(daemons["config"])
    engine = create_index_engine(config.database_url)
    findings = {finding.subject: finding for finding in read(Context(config, engine, datetime.now(UTC))).findings}
    assert {subject: finding.severity for subject, finding in findings.items()} == {
        "archive": Severity.OK,
        "worklist": Severity.OK,
        "hl7": Severity.OK,
    }, {subject: finding.detail for subject, finding in findings.items()}
    assert findings["archive"].message == "L'archive DICOM répond."
    assert "C-ECHO PACS-MONITOR -> APPLIANCE@127.0.0.1" in findings["archive"].detail
    assert "MSA AA" in findings["hl7"].detail, "NMQ^N01 answered, though MSH-4 is not the RIS's facility"
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(hl7_inbox)).scalar_one() == 0, "no record"
    dicom_log = daemons["daemons"]["dicom"].log()
    assert "PACS-MONITOR" not in dicom_log, "the monitor's association every minute is not logged at INFO"
    assert "NMQ" not in daemons["daemons"]["hl7"].log(), "the monitor's query every round is logged at DEBUG only"

    daemons["daemons"]["hl7"].stop()
    [hl7] = [
        finding for finding in read(Context(config, engine, datetime.now(UTC))).findings if finding.subject == "hl7"
    ]
    assert hl7.severity is Severity.CRITICAL and "ne répond pas" in hl7.message
    engine.dispose()


def test_an_archive_that_is_not_there_is_critical(tmp_path: Path) -> None:
    config_data: dict[str, Any] = archive_config(tmp_path / "data", free_port())
    config_data["dicom"]["port"] = free_port()
    config_data["worklist"] = {"port": 0}
    config_data["hl7"] = {"port": 0}
    config = load_config(write_config(tmp_path / "appliance.yaml", config_data))
    engine = create_index_engine(config.database_url)
    findings = {finding.subject: finding for finding in read(Context(config, engine, datetime.now(UTC))).findings}
    assert findings["archive"].severity is Severity.CRITICAL
    assert findings["archive"].message == "L'archive DICOM ne répond pas : les appareils ne peuvent plus l'utiliser."
    assert findings["worklist"].severity is Severity.ABSENT and findings["hl7"].severity is Severity.ABSENT
    engine.dispose()
