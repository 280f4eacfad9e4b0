"""Integrity commands on a real archive (Q1), and the daemon's life cycle under systemd's protocol."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

from servers import Daemon, archive_config, cli, launcher, run, write_config


def stored_archive(tmp_path: Path, samples: dict[str, list[Path]]) -> Daemon:
    config_path = write_config(tmp_path / "a.yaml", archive_config(tmp_path / "data", 1))
    daemon = Daemon("appliance.dicom.daemon", config_path, tmp_path / "log").start()
    files = [str(path) for modality in ("CT", "MR", "US") for path in samples[modality]]
    run(["storescu", "-aec", "APPLIANCE", "127.0.0.1", str(daemon.port), *files])
    daemon.stop()
    return daemon


def test_verify_reports_missing_altered_and_orphan_files(tmp_path: Path, samples: dict[str, list[Path]]) -> None:
    daemon = stored_archive(tmp_path, samples)
    assert "checked 9 file(s): 0 missing, 0 altered, 0 orphan(s)" in cli(daemon.config_path, "archive", "verify").stdout
    files = sorted((tmp_path / "data" / "archive").rglob("*.dcm"))
    files[0].unlink()
    with open(files[1], "r+b") as altered:
        altered.seek(-10, 2)
        altered.write(b"0123456789")
    shutil.copy(samples["CT"][0], files[2].parent / "stray.dcm")  # a second copy of an archived instance
    result = cli(daemon.config_path, "archive", "verify", check=False)
    assert result.returncode == 1
    assert "1 missing, 1 altered, 1 orphan(s)" in result.stdout
    assert f"missing: {files[0].relative_to(tmp_path / 'data' / 'archive')}" in result.stdout
    adopted = cli(daemon.config_path, "archive", "verify", "--adopt-orphans", check=False).stdout
    assert "adopted 0 orphan(s); set aside 1 in quarantine/" in adopted  # the stray copy is a known instance
    assert "0 orphan(s)" in cli(daemon.config_path, "archive", "verify", check=False).stdout


def test_orphans_of_an_interrupted_ingest_are_adopted(tmp_path: Path, samples: dict[str, list[Path]]) -> None:
    daemon = stored_archive(tmp_path, samples)
    day = next((tmp_path / "data" / "archive").glob("*/*/*"))
    shutil.copy(samples["DX"][0], day / "written-but-never-indexed.dcm")
    assert "adopted 1 orphan(s)" in cli(daemon.config_path, "archive", "verify", "--adopt-orphans").stdout
    assert "instances           10" in cli(daemon.config_path, "archive", "stats").stdout


def test_reindex_rebuilds_the_index_from_the_files(tmp_path: Path, samples: dict[str, list[Path]]) -> None:
    daemon = stored_archive(tmp_path, samples)
    before = cli(daemon.config_path, "archive", "stats").stdout
    (tmp_path / "data" / "index" / "appliance.sqlite").unlink()
    for leftover in (tmp_path / "data" / "index").glob("appliance.sqlite-*"):
        leftover.unlink()
    assert "indexed 9 file(s); 0 unreadable" in cli(daemon.config_path, "archive", "reindex").stdout
    after = cli(daemon.config_path, "archive", "stats").stdout
    for line in ("patients", "studies", "series", "instances"):
        assert next(row for row in before.splitlines() if row.startswith(line)) in after
    assert "0 missing, 0 altered, 0 orphan(s)" in cli(daemon.config_path, "archive", "verify").stdout


def test_ready_and_stopping_are_notified_and_sigterm_exits_cleanly(tmp_path: Path) -> None:
    notify_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(60)
    config_path = write_config(tmp_path / "a.yaml", archive_config(tmp_path / "data", 1))
    daemon = Daemon(
        "appliance.dicom.daemon", config_path, tmp_path / "log", environment={"NOTIFY_SOCKET": str(notify_path)}
    )
    daemon.start()
    ready = listener.recv(4096).decode()
    assert ready.startswith("READY=1")
    run(["echoscu", "-aec", "APPLIANCE", "127.0.0.1", str(daemon.port)])  # bound before READY
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(timeout=60) == 0
    assert listener.recv(4096).decode() == "STOPPING=1"
    listener.close()
    assert "DICOM archive APPLIANCE stopped" in daemon.log()


def test_bad_configuration_stops_the_daemon_with_file_and_key(tmp_path: Path) -> None:
    config_path = tmp_path / "bad.yaml"
    config_path.write_text("dicom:\n  port: -4\n")
    completed = subprocess.run(
        [sys.executable, "-c", launcher("appliance.dicom.daemon"), "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert f"{config_path}: dicom.port: -4 is less than the minimum of 0" in completed.stderr
