"""The console's way of putting a setting in force: the writer changes the console layer, then every
running daemon found in `<data>/run/` gets SIGHUP and says it reloaded (real daemons here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dicom_wire import rejection
from servers import Daemon, archive_config, associate, wait_for, write_config

from appliance import systemd
from appliance.config import load_config
from appliance.config.writer import write_console_settings
from appliance.dicom.worklist_scp import MODALITY_WORKLIST_FIND
from appliance.systemd import ReloadState

CALLING_AE_NOT_RECOGNISED = (1, 1, 3)  # rejected permanent, by the service user (PS3.8 9.3.4)


def test_a_peer_added_by_the_console_is_in_force_after_the_reload(tmp_path: Path) -> None:
    config: dict[str, Any] = archive_config(tmp_path / "data", 1)
    config["worklist"] = {"bind_address": "127.0.0.1", "port": 0}
    config_path = write_config(tmp_path / "appliance.yaml", config)
    worklist = Daemon("appliance.daemons.worklist", config_path, tmp_path / "worklist.log").start()
    worker = Daemon("appliance.daemons.worker", config_path, tmp_path / "worker.log").start()
    try:
        run = load_config(config_path).storage.run_directory
        wait_for(lambda: (run / "appliance-worker.pid").exists(), "the worker's PID file")
        assert rejection(worklist.port, "ECHO_1", MODALITY_WORKLIST_FIND) == CALLING_AE_NOT_RECOGNISED
        peers = [*config["peers"], {"ae_title": "ECHO_1", "host": "127.0.0.1", "rights": ["worklist"]}]
        assert write_console_settings(load_config(config_path), {"peers": peers}).written
        answers = systemd.reload_daemons(run, wait_seconds=30)
        assert [(answer.name, answer.state) for answer in answers] == [
            ("appliance-worker", ReloadState.RELOADED),
            ("appliance-worklist", ReloadState.RELOADED),
        ]
        assert "configuration reloaded" in worklist.log()
        association = associate(worklist.port, MODALITY_WORKLIST_FIND, ae_title="ECHO_1")
        assert association.is_established
        association.release()
    finally:
        worker.stop()
        worklist.stop()
    assert not list(run.glob("*.pid"))
