"""Every source answers on a development machine (no RAID, maybe no smartctl, no UPS, no hooks, no
certificate): ABSENT or OK, never an exception. Disk space and clock are read for real, so their
severity is this machine's own."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from appliance.config import development_config
from appliance.monitor import Severity
from appliance.monitor.registry import SOURCES
from appliance.monitor.sources import Context

MACHINE_DEPENDENT = {"disk", "time"}
# These look at the appliance's daemons, which this test does not start: they rightly say so.
DAEMON_DEPENDENT = {"services", "dicom"}
# Development configures a local repository ("back up now" in the console): not backed up yet, a warning.
NOT_YET = {"backup"}


def test_every_source_answers_with_the_development_settings(tmp_path: Path, engine: Engine) -> None:
    config = development_config(tmp_path / "data")
    config.storage.data_directory.mkdir()
    context = Context(config, engine, datetime.now(UTC))
    for name, check in SOURCES.items():
        reading = check(context)  # not through run_source: an exception must fail this test
        assert reading.findings or name == "outbox", name  # an empty outbox has no channel to speak of
        for finding in reading.findings:
            assert finding.source == name and finding.message, finding
            if name not in MACHINE_DEPENDENT | DAEMON_DEPENDENT | NOT_YET:
                assert finding.severity in (Severity.ABSENT, Severity.OK), finding
    assert {finding.severity for finding in SOURCES["ups"](context).findings} == {Severity.ABSENT}
    assert {finding.severity for finding in SOURCES["certificate"](context).findings} == {Severity.ABSENT}
    assert {finding.severity for finding in SOURCES["events"](context).findings} == {Severity.ABSENT}
    assert {finding.severity for finding in SOURCES["tunnel"](context).findings} == {Severity.ABSENT}


def test_the_sources_in_display_order() -> None:
    assert list(SOURCES) == [
        "disk",
        "raid",
        "smart",
        "ups",
        "services",
        "dicom",
        "outbox",
        "time",
        "certificate",
        "events",
        "backup",
        "tunnel",
        "qc",
    ]
