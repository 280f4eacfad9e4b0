"""The generated borgmatic configuration is one borgmatic itself accepts (`borgmatic config
validate`), backs up the snapshot, the images and the configuration, and prunes nothing off site."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from backup_rig import box

from appliance.backup.borgmatic import borgmatic_document, write_borgmatic_file
from appliance.backup_cli import timer_schedules
from appliance.config import load_config

BORGMATIC = str(Path(sys.executable).parent / "borgmatic")


def test_borgmatic_validates_the_generated_configuration(tmp_path: Path) -> None:
    path = box(tmp_path, {"repository": "ssh://borg@sauvegarde.example.fr:2222/./cabinet",
                          "ssh_key_file": "/etc/appliance/backup/id_ed25519",
                          "usb": {"labels": ["PACS-BACKUP-1", "PACS-BACKUP-2"]}})  # fmt: skip
    config = load_config(path)
    written = write_borgmatic_file(config)
    assert written.stat().st_mode & 0o077 == 0
    checked = subprocess.run([BORGMATIC, "config", "validate", "-c", str(written)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    document = yaml.safe_load(written.read_text())
    data = config.storage.data_directory
    assert document["source_directories"][:3] == [
        f"{data}/backup/./staging",
        f"{data}/./archive",
        f"{data}/./quarantine",
    ]
    assert document["source_directories"][3] == str(tmp_path / "etc")
    assert [repository["label"] for repository in document["repositories"]] == ["remote", "usb"]
    assert document["compression"] == "auto,zstd,3"
    assert "-i /etc/appliance/backup/id_ed25519" in document["ssh_command"]
    assert str(config.backup.passphrase_file) in document["exclude_patterns"]


def test_a_postgresql_index_is_dumped_by_borgmatic(tmp_path: Path) -> None:
    path = box(tmp_path, {"repository": str(tmp_path / "repository")})
    text = path.read_text() + "database:\n  url: postgresql+psycopg://pacs:secret@db.cabinet.lan:5433/archive\n"
    path.write_text(text)
    document = borgmatic_document(load_config(path))
    assert document["postgresql_databases"] == [{"name": "archive", "format": "custom", "hostname": "db.cabinet.lan",
                                                 "port": 5433, "username": "pacs", "password": "secret"}]  # fmt: skip


def test_the_timers_follow_the_configured_time(tmp_path: Path) -> None:
    path = box(tmp_path, {"repository": str(tmp_path / "repository"), "time": "23:15", "drill": {"day_of_month": 7}})
    assert timer_schedules(load_config(path)) == {
        "appliance-backup.timer": "*-*-* 23:15:00",
        "appliance-drill.timer": "*-*-07 03:15:00",
    }
