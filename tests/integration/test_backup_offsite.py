"""The off-site repository over SSH (B1): a throwaway sshd on loopback plays the practice's
off-site service, the box's key forced on its side to `borg serve --append-only
--restrict-to-repository`. The box backs up and restores through it, and cannot destroy its
history: deleting the repository is refused, and an archive "deleted" from the box is only hidden
(append-only) until the server's administrator rolls the transaction back."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from backup_rig import PASSPHRASE, append_only_server, box, ingest_of, receive_study, with_tools_on_path

from appliance.backup.borgmatic import ssh_command
from appliance.backup.history import runs
from appliance.backup.restore import archive_names
from appliance.backup.targets import target_named
from appliance.cli import main
from appliance.config import load_config


@pytest.fixture(autouse=True)
def tools(monkeypatch: pytest.MonkeyPatch) -> None:
    with_tools_on_path(monkeypatch)


def borg_from_the_box(config_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """borg run by hand on the box, with the box's ssh key and passphrase (what an intruder has)."""
    config = load_config(config_path)
    environment = {**os.environ, "BORG_PASSPHRASE": PASSPHRASE, "BORG_RSH": ssh_command(config),
                   "BORG_BASE_DIR": str(config.backup.state_directory / "borg"),
                   "BORG_DELETE_I_KNOW_WHAT_I_AM_DOING": "YES"}  # fmt: skip
    return subprocess.run(["borg", *arguments], capture_output=True, text=True, env=environment, timeout=120)


def test_backup_to_an_append_only_server_which_refuses_destruction(tmp_path: Path) -> None:
    with append_only_server(tmp_path / "server") as (url, key, known_hosts):
        path = box(
            tmp_path / "box", {"repository": url, "ssh_key_file": str(key), "known_hosts_file": str(known_hosts)}
        )
        config = load_config(path)
        receive_study(ingest_of(config), 4)
        assert main(["backup", "init", "--config", str(path)]) == 0
        assert main(["backup", "run", "--config", str(path)]) == 0
        assert main(["backup", "run", "--config", str(path)]) == 0
        assert [(record.target, record.succeeded) for record in runs(config.backup.state_directory)] == [
            ("remote", True), ("remote", True)]  # fmt: skip
        target = target_named(config.backup, "remote")
        names = archive_names(config, target)
        assert len(names) == 2  # never pruned from the box (keep_daily would not remove these anyway)

        deleted_repository = borg_from_the_box(path, "delete", url)
        assert deleted_repository.returncode != 0, deleted_repository.stderr
        assert borg_from_the_box(path, "list", "--short", url).stdout.split() == names

        # Only that repository: another path on the same server is refused.
        elsewhere = url.rsplit("/", 1)[0] + "/other"
        refused = borg_from_the_box(path, "init", "--encryption", "repokey-blake2", elsewhere)
        assert refused.returncode != 0

        # Deleting an archive and compacting: the segments stay (append-only), nothing is freed.
        data = tmp_path / "server" / "remote" / "repo" / "data"
        segments_before = {segment: segment.read_bytes() for segment in data.rglob("*") if segment.is_file()}
        borg_from_the_box(path, "delete", f"{url}::{names[0]}")
        borg_from_the_box(path, "compact", url)
        for segment, content in segments_before.items():
            assert segment.read_bytes() == content  # every byte of the history is still on the server
        assert (tmp_path / "server" / "remote" / "repo" / "transactions").is_file()  # what the administrator rolls back
        assert main(["backup", "drill", "--config", str(path)]) == 0
