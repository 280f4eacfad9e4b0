"""`appliance health`: the tiles in a terminal and as JSON, read from an index filled with
`store.record`, and the exit status scripts rely on (0 OK or absent, 1 warning or a silent monitor,
2 critical, 3 unreadable)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from appliance.cli import main
from appliance.config import development_config
from appliance.db import create_index_engine
from appliance.monitor import Finding, Reading, Severity, store

DEGRADED = "Le RAID des images (md1) fonctionne sur un seul disque."


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    assert main(["db", "upgrade", "--data", str(folder)]) == 0
    return folder


@pytest.fixture()
def index(data: Path) -> Iterator[Engine]:
    opened = create_index_engine(development_config(data.absolute()).database_url)
    yield opened
    opened.dispose()


def health(data: Path, capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, str]:
    status = main(["health", "--data", str(data), *options])
    return status, capsys.readouterr().out


def test_all_ok_or_absent_is_zero(data: Path, index: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC)
    store.record(index, "raid", Reading([Finding("raid", "md1", Severity.OK, "Le RAID va bien.", "md1 [UU]")]), now)
    store.record(index, "ups", Reading([Finding("ups", "ups", Severity.ABSENT, "Aucun onduleur.")]), now)
    status, out = health(data, capsys)
    assert status == 0
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert "ok" in lines["RAID"] and "Le RAID va bien." in lines["RAID"] and "(since " in lines["RAID"]
    assert "absent" in lines["UPS"] and "Aucun onduleur." in lines["UPS"]
    assert "nothing recorded" in lines["last"]  # last backup, last QC report: no round yet
    assert out.startswith("monitor: last check ") and "md1 [UU]" not in out


def test_a_warning_is_one_a_critical_two_and_verbose_shows_the_detail(
    data: Path, index: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    store.record(
        index, "smart", Reading([Finding("smart", "sda", Severity.WARNING, "Le disque sda chauffe.", "51 °C")]), now
    )
    assert health(data, capsys)[0] == 1
    raid = Finding("raid", "md1", Severity.CRITICAL, DEGRADED, "md1 [U_]: sdb1 faulty (serial WD-WCC4N1234567)")
    store.record(index, "raid", Reading([raid]), now)
    status, out = health(data, capsys, "--verbose")
    assert status == 2
    assert f"CRITICAL  {DEGRADED}" in out and "serial WD-WCC4N1234567" in out and "    sda: WARNING" in out


def test_json_holds_every_state(data: Path, index: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    raid = Finding("raid", "md1", Severity.CRITICAL, DEGRADED, "sdb1 faulty", since=now - timedelta(hours=1))
    store.record(index, "raid", Reading([raid]), now)
    status, out = health(data, capsys, "--json")
    document = json.loads(out)
    assert status == 2 and document["severity"] == "critical" and document["monitor"]["stale"] is False
    assert document["states"] == [
        {
            "source": "raid",
            "subject": "md1",
            "severity": "critical",
            "message": DEGRADED,
            "detail": "sdb1 faulty",
            "since": (now - timedelta(hours=1)).isoformat(),
            "checked_at": now.isoformat(),
        }
    ]


def test_a_silent_monitor_is_a_warning(data: Path, index: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = health(data, capsys)
    assert status == 1 and "nothing recorded yet" in out
    old = datetime.now(UTC) - timedelta(hours=2)
    store.record(index, "raid", Reading([Finding("raid", "md1", Severity.OK, "Le RAID va bien.")]), old)
    status, out = health(data, capsys)
    assert status == 1 and out.startswith("monitor: SILENT since")


def test_no_archive_is_three(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health", "--data", str(tmp_path / "nothing")]) == 3
    assert "holds no archive" in capsys.readouterr().err
