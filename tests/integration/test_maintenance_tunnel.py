"""The maintenance tunnel with real components: `appliance-tunnel` (the keeper) running real autossh
to a real OpenSSH bastion on loopback whose authorized_keys restricts the box's key as the README
says; a TCP server stands for the box's sshd. The tunnel forwards while open, closes at once or at
its end, comes back after a link flap; the worker records the expiry (audit trail, mail); the
box's key opens no shell and no other port on the bastion."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from mail_sink import MailSink
from servers import Daemon, archive_config, free_port, listening, wait_for, write_config
from tunnel_bastion import BOX_BANNER, Bastion, BoxStandIn, make_key, through_tunnel

from appliance.audit.events import EventId, EventType, ObjectKind
from appliance.audit.trail import AuditTrail
from appliance.config import load_config
from appliance.daemons.worker import tunnel_expiry_round
from appliance.maintenance.state import EXPIRED, Opening, close_tunnel, open_tunnel, read_state, state_path, write_state

pytestmark = pytest.mark.skipif(
    subprocess.run(["sh", "-c", "command -v autossh"], capture_output=True).returncode != 0,
    reason="autossh is not installed (apt-get install autossh)",
)
ALIVE_SECONDS = 1


@pytest.fixture()
def box_key(tmp_path: Path) -> tuple[Path, str]:
    key = tmp_path / "box" / "id_ed25519"
    key.parent.mkdir()
    return key, make_key(key, "appliance@test")


@pytest.fixture()
def bastion(tmp_path: Path, box_key: tuple[Path, str]) -> Iterator[Bastion]:
    server = Bastion(tmp_path / "bastion", box_key[1], remote_port=free_port()).start()
    yield server
    server.stop()


@pytest.fixture()
def box() -> Iterator[BoxStandIn]:
    server = BoxStandIn().start()
    yield server
    server.stop()


@pytest.fixture()
def sink() -> Iterator[MailSink]:
    server = MailSink().start()
    yield server
    server.stop()


@pytest.fixture()
def config_path(tmp_path: Path, bastion: Bastion, box: BoxStandIn, box_key: tuple[Path, str], sink: MailSink) -> Path:
    maintenance = {
        "bastion_host": "127.0.0.1",
        "bastion_port": bastion.port,
        "bastion_user": bastion.user,
        "remote_port": bastion.remote_port,
        "box_port": box.port,
        "known_hosts_file": str(bastion.known_hosts),
        "key_file": str(box_key[0]),
        "alive_interval_seconds": ALIVE_SECONDS,
    }
    mail = {"relay_host": "127.0.0.1", "relay_port": sink.port, "recipients": ["cabinet@example.fr"]}
    document = archive_config(tmp_path / "data", free_port(), maintenance=maintenance, mail=mail)
    return write_config(tmp_path / "appliance.yaml", document)


@pytest.fixture()
def keeper(tmp_path: Path, config_path: Path) -> Iterator[Daemon]:
    daemon = Daemon("appliance.daemons.tunnel", config_path, tmp_path / "tunnel.log").start()
    yield daemon
    assert daemon.stop() == 0


def opening(now: datetime, until: datetime) -> Opening:
    return Opening("dr-martin", "Dr Paul Martin", "192.0.2.7", "mise à jour du noyau", True, now, until)


def open_for_an_hour(config_path: Path) -> Opening:
    now = datetime.now(UTC)
    return open_tunnel(state_path(load_config(config_path)), opening(now, now + timedelta(hours=1)))


def test_closed_by_default_then_forwards_while_open_and_closes_at_once(
    config_path: Path, keeper: Daemon, bastion: Bastion
) -> None:
    time.sleep(2 * 1.0)  # two of the keeper's polls: nothing must have started
    assert not bastion.forwarding() and bastion.sessions() == []
    started = time.monotonic()
    open_for_an_hour(config_path)
    wait_for(bastion.forwarding, "the box's forward on the bastion")
    print(f"tunnel up {time.monotonic() - started:.2f} s after the opening")
    assert through_tunnel(bastion.remote_port) == BOX_BANNER + b"hello box\n"
    asked = time.monotonic()
    assert close_tunnel(state_path(load_config(config_path)), "dr-martin", datetime.now(UTC)) is not None
    wait_for(lambda: not bastion.forwarding() and bastion.sessions() == [], "the tunnel closed", seconds=15)
    print(f"tunnel closed {time.monotonic() - asked:.2f} s after the closing")
    assert "stopping autossh (the tunnel is closed)" in keeper.log()


def test_a_dropped_connection_is_made_again(config_path: Path, keeper: Daemon, bastion: Bastion) -> None:
    open_for_an_hour(config_path)
    wait_for(bastion.forwarding, "the box's forward on the bastion")
    for session in bastion.sessions():
        session.kill()  # the bastion's side of the connection dies: the link is cut
    cut = time.monotonic()
    wait_for(lambda: not bastion.forwarding(), "the forward gone with its connection", seconds=10)
    wait_for(bastion.forwarding, "autossh connected again", seconds=60)
    print(f"tunnel back {time.monotonic() - cut:.2f} s after its connection was cut")
    assert through_tunnel(bastion.remote_port, b"again\n") == BOX_BANNER + b"again\n"


def test_the_bastion_restarting_is_survived(config_path: Path, keeper: Daemon, bastion: Bastion) -> None:
    open_for_an_hour(config_path)
    wait_for(bastion.forwarding, "the box's forward on the bastion")
    bastion.stop()
    down = time.monotonic()
    time.sleep(3)  # the bastion away for a while: autossh's attempts fail meanwhile
    bastion.start()
    wait_for(bastion.forwarding, "autossh connected again", seconds=90)
    print(f"tunnel back {time.monotonic() - down:.2f} s after the bastion went down for 3 s")
    assert through_tunnel(bastion.remote_port) == BOX_BANNER + b"hello box\n"


def test_the_tunnel_closes_itself_at_its_end_and_the_worker_records_it(
    config_path: Path, keeper: Daemon, bastion: Bastion, sink: MailSink
) -> None:
    config = load_config(config_path)
    now = datetime.now(UTC)
    until = now + timedelta(seconds=4)  # a short opening written directly: the console offers hours
    write_state(state_path(config), opening(now, until))
    wait_for(bastion.forwarding, "the box's forward on the bastion")
    wait_for(lambda: not bastion.forwarding() and bastion.sessions() == [], "the tunnel closed at its end", seconds=20)
    late = datetime.now(UTC) - until
    print(f"tunnel closed {late.total_seconds():.2f} s after its end")
    assert late < timedelta(seconds=3)

    trail = AuditTrail(config.audit.database)
    try:
        runtime = SimpleNamespace(config=config)
        tunnel_expiry_round(runtime, trail)  # type: ignore[arg-type]
        tunnel_expiry_round(runtime, trail)  # type: ignore[arg-type]  # recorded once only
        recorded = read_state(state_path(config))
        assert recorded is not None and recorded.closed_because == EXPIRED and recorded.closed_at == until
        tunnel_events = [record.event for record in trail.search() if record.event.event is EventId.SECURITY_ALERT]
        assert len(tunnel_events) == 1
        event = tunnel_events[0]
        assert event.event_type is EventType.REMOTE_SERVICE_OPERATION_STOPPED and event.outcome_description == "expired"
        assert event.requestor is not None and event.requestor.user_id == "appliance-worker"
        assert [participant.user_id for participant in event.participants] == ["appliance-worker", "dr-martin"]
        assert event.objects[0].kind is ObjectKind.SECURITY_RESOURCE
        assert ("reason", "mise à jour du noyau") in event.objects[0].details
        wait_for(lambda: len(sink.mails) == 1, "the expiry's mail")
        subject, body = sink.mails[0]
        assert "Accès de maintenance fermé (durée écoulée)" in subject and "Dr Paul Martin" in body
    finally:
        trail.close()


def test_the_box_key_opens_no_shell_and_no_other_port(bastion: Bastion, box_key: tuple[Path, str]) -> None:
    ssh = [
        "ssh", "-F", "none", "-i", str(box_key[0]), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={bastion.known_hosts}", "-o", "StrictHostKeyChecking=yes",
        "-o", "ExitOnForwardFailure=yes", "-p", str(bastion.port),
    ]  # fmt: skip
    target = f"{bastion.user}@127.0.0.1"
    command = subprocess.run([*ssh, target, "echo shell-reached; id"], capture_output=True, text=True, timeout=30)
    assert command.returncode != 0 and "shell-reached" not in command.stdout
    interactive = subprocess.run([*ssh, "-tt", target], input="echo shell-reached\n", capture_output=True,
                                 text=True, timeout=30)  # fmt: skip
    assert "shell-reached" not in interactive.stdout
    other = free_port()
    other_listen = subprocess.run([*ssh, "-N", "-R", f"127.0.0.1:{other}:127.0.0.1:22", target],
                                  capture_output=True, text=True, timeout=30)  # fmt: skip
    assert other_listen.returncode != 0 and "forwarding failed" in other_listen.stderr
    wildcard = subprocess.run([*ssh, "-N", "-R", f"0.0.0.0:{bastion.remote_port}:127.0.0.1:22", target],
                              capture_output=True, text=True, timeout=30)  # fmt: skip
    assert wildcard.returncode != 0
    local = subprocess.Popen([*ssh, "-N", "-L", f"127.0.0.1:{other}:127.0.0.1:{bastion.port}", target],
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_for(lambda: listening_or_exited(other, local), "the local forward's listener")
        if local.poll() is None:  # ssh listens locally; the bastion must refuse to open the channel
            with socket.create_connection(("127.0.0.1", other), timeout=10) as connection:
                connection.settimeout(10)
                assert connection.recv(100) == b""
    finally:
        local.terminate()
        local.wait(timeout=10)


def listening_or_exited(port: int, process: subprocess.Popen[str]) -> bool:
    return process.poll() is not None or listening(port)
