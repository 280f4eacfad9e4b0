"""The events source reads the JSON-lines file the hooks append to (written here as
/usr/local/lib/appliance/appliance-event writes it: one sorted-keys JSON object a line)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from appliance.config import development_config
from appliance.monitor import Severity
from appliance.monitor.events import read
from appliance.monitor.sources import Context

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CRITICAL = {"fail", "degradedarray", "lowbatt", "health", "data-degraded"}
WARNING = {"onbatt", "rebuildstarted"}


def line(age: timedelta, source: str, event: str, device: str = "", detail: str = "", **context: str) -> str:
    """One line as appliance-event writes it (its severity table, abridged)."""
    severity = "critical" if event.lower() in CRITICAL else "warning" if event.lower() in WARNING else "info"
    record = {
        "time": (NOW - age).isoformat(timespec="seconds"),
        "source": source,
        "event": event,
        "severity": severity,
        "device": device,
        "detail": detail,
        "host": "pacs",
        "context": context,
    }
    return json.dumps(record, sort_keys=True) + "\n"


def events_context(tmp_path: Path, engine: Engine, events_file: Path | None) -> Context:
    config = development_config(tmp_path / "data")
    config = dataclasses.replace(config, monitor=dataclasses.replace(config.monitor, events_file=events_file))
    return Context(config, engine, NOW)


def test_recent_problems_are_findings_and_settled_ones_are_not(tmp_path: Path, engine: Engine) -> None:
    events = tmp_path / "events" / "events.jsonl"
    events.parent.mkdir()
    events.write_text(
        line(timedelta(hours=30), "nut", "lowbatt", "onduleur", UPSNAME="onduleur")  # more than a day ago
        + line(timedelta(hours=5), "mdadm", "NewArray", "/dev/md1")  # information only
        + line(timedelta(hours=3), "mdadm", "Fail", "/dev/md1", "/dev/sdb2")
        + line(timedelta(hours=2), "nut", "onbatt", "onduleur", UPSNAME="onduleur", NOTIFYTYPE="ONBATT")
        + "this is not an event\n"
        + line(timedelta(hours=2), "smartd", "health", "/dev/sda", "Device: /dev/sda [SAT], FAILED SMART self-check")
        + line(timedelta(hours=1), "nut", "online", "onduleur", UPSNAME="onduleur")  # power is back
        + line(timedelta(minutes=5), "smartd", "health", "/dev/sda", "Device: /dev/sda [SAT], FAILED SMART self-check")
    )
    findings = {finding.subject: finding for finding in read(events_context(tmp_path, engine, events)).findings}
    assert set(findings) == {"mdadm Fail /dev/md1", "smartd health /dev/sda"}
    failed = findings["mdadm Fail /dev/md1"]
    assert (failed.source, failed.severity) == ("events", Severity.CRITICAL)
    assert failed.message == "Un disque du RAID a été retiré ou est tombé en panne."
    assert failed.since == NOW - timedelta(hours=3)
    assert '"detail": "/dev/sdb2"' in failed.detail and failed.detail.startswith("1 x, last: {")
    disk = findings["smartd health /dev/sda"]
    assert disk.message.endswith("(2 fois depuis hier)") and disk.since == NOW - timedelta(hours=2)


def test_a_spare_active_again_settles_the_failure(tmp_path: Path, engine: Engine) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(
        line(timedelta(hours=3), "mdadm", "Fail", "/dev/md1", "/dev/sdb2")
        + line(timedelta(hours=2), "mdadm", "RebuildStarted", "/dev/md1")
        + line(timedelta(minutes=20), "mdadm", "RebuildFinished", "/dev/md1")
        + line(timedelta(minutes=20), "mdadm", "SpareActive", "/dev/md1", "/dev/sdc2")
    )
    [finding] = read(events_context(tmp_path, engine, events)).findings
    assert (finding.subject, finding.severity) == ("events", Severity.OK)
    assert finding.message == "Aucun incident signalé par les outils système depuis 24 heures."


def test_only_the_end_of_a_long_file_is_read(tmp_path: Path, engine: Engine) -> None:
    events = tmp_path / "events.jsonl"
    old = line(timedelta(days=20), "mdadm", "TestMessage", "/dev/md0")
    events.write_text(old * (400_000 // len(old)) + line(timedelta(hours=1), "storage", "data-degraded", "/dev/md1"))
    [finding] = read(events_context(tmp_path, engine, events)).findings
    assert finding.severity is Severity.CRITICAL and "un seul disque" in finding.message


def test_absent_without_the_hooks_ok_before_the_first_event(tmp_path: Path, engine: Engine) -> None:
    for missing in (None, tmp_path / "no-folder" / "events.jsonl"):
        [finding] = read(events_context(tmp_path, engine, missing)).findings
        assert finding.severity is Severity.ABSENT
    [finding] = read(events_context(tmp_path, engine, tmp_path / "events.jsonl")).findings
    assert finding.severity is Severity.OK and "no event recorded" in finding.detail
