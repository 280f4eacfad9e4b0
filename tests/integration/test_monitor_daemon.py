"""The real `appliance-monitor` process: READY on a notify socket, a first round at start-up whose
findings land in `health_state` and whose critical changes arrive in one mail on a real SMTP
server, another round on SIGUSR1, a clean exit 0 on SIGTERM.

The services it reads come from a `systemctl` on PATH printing what systemd prints for a failed
unit (a test machine has no failed appliance unit); the archive it probes is a port where nothing
listens; the RAID array is a recorded /proc/mdstat of a degraded RAID-1 (checked when the raid
source is registered)."""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mail_sink import MailSink
from servers import Daemon, archive_config, free_port, wait_for, write_config

from appliance.config import load_config
from appliance.db import create_index_engine
from appliance.monitor import Severity, store
from appliance.monitor.registry import SOURCES

DEGRADED_MDSTAT = """\
Personalities : [raid1] [linear] [multipath] [raid0] [raid6] [raid5] [raid4] [raid10]
md127 : active raid1 vdc1[0]
      10476544 blocks super 1.2 [2/1] [U_]

md0 : active raid1 vda2[0] vdb2[1]
      4189184 blocks super 1.2 [2/2] [UU]

unused devices: <none>
"""
FAILED_DICOM = (
    "Id=appliance-dicom.service\nLoadState=loaded\nUnitFileState=enabled\nActiveState=failed\nSubState=failed\n"
    "NRestarts=5\nStateChangeTimestamp=@1764666000"
)


@pytest.fixture()
def sink() -> Iterator[MailSink]:
    server = MailSink().start()
    yield server
    server.stop()


def monitor_config(tmp_path: Path, sink: MailSink) -> Path:
    (tmp_path / "mdstat").write_text(DEGRADED_MDSTAT)
    config: dict[str, Any] = archive_config(tmp_path / "data", free_port())
    config["site_name"] = "Cabinet Exemple"
    config["dicom"]["port"] = free_port()  # nothing listens there: the archive "does not answer"
    config["worklist"] = {"port": 0}
    config["hl7"] = {"port": 0}
    config["mail"] = {
        "relay_host": "127.0.0.1",
        "relay_port": sink.port,
        "recipients": ["secretariat@cabinet.example.fr"],
    }
    config["monitor"] = {
        "interval_seconds": 3600,
        "mdstat_file": str(tmp_path / "mdstat"),
        "events_file": str(tmp_path / "events.jsonl"),
        "units": ["appliance-dicom.service", "nginx.service"],
    }
    return write_config(tmp_path / "appliance.yaml", config)


def fake_systemctl(folder: Path) -> None:
    folder.mkdir()
    script = folder / "systemctl"
    script.write_text(
        f"#!{sys.executable}\nimport sys\nunits = sys.argv[sys.argv.index('--') + 1:]\n"
        f"failed = {FAILED_DICOM!r}\n"
        "print('\\n\\n'.join(failed if u == 'appliance-dicom.service' else f'Id={u}\\nLoadState=not-found' "
        "for u in units))\n"
    )
    script.chmod(0o755)


def test_the_daemon_records_mails_checks_again_on_sigusr1_and_stops_cleanly(tmp_path: Path, sink: MailSink) -> None:
    fake_systemctl(tmp_path / "bin")
    notify_path = tmp_path / "notify.socket"
    notifications = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notifications.bind(str(notify_path))
    notifications.settimeout(30)
    environment = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "NOTIFY_SOCKET": str(notify_path)}
    config_path = monitor_config(tmp_path, sink)
    daemon = Daemon("appliance.daemons.monitor", config_path, tmp_path / "monitor.log", environment=environment)
    daemon.start()
    try:
        assert notifications.recv(4096).decode().startswith("READY=1")
        config = load_config(config_path)
        engine = create_index_engine(config.database_url)
        wait_for(lambda: sink.mails, "the alert mail")
        states = {(state.source, state.subject): state for state in store.current(engine)}
        assert states[("services", "appliance-dicom.service")].severity is Severity.CRITICAL
        assert states[("dicom", "archive")].severity is Severity.CRITICAL
        assert states[("dicom", "hl7")].severity is Severity.ABSENT
        if "raid" in SOURCES:
            assert states[("raid", "md127")].severity is Severity.CRITICAL, states
        [(subject, body)] = sink.mails
        assert subject.startswith("[Cabinet Exemple] CRITIQUE : ")
        assert "L'archive DICOM est arrêté(e) sur une erreur" in body and "L'archive DICOM ne répond pas" in body
        first_check = states[("services", "appliance-dicom.service")].checked_at

        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGUSR1)
        wait_for(lambda: store.current(engine, "services")[0].checked_at > first_check, "a second round after SIGUSR1")
        assert len(sink.mails) == 1, "nothing changed: no second mail"
        assert store.unalerted(engine) == []
        engine.dispose()
    finally:
        code = daemon.stop()
        notifications.close()
    assert code == 0
    log = daemon.log()
    assert "health alert: nouveau problème services/appliance-dicom.service" in log
    assert "health alert: mail handed to 127.0.0.1" in log
