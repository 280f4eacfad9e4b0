"""The real `appliance-web` (gunicorn embedded) on a free loopback port: READY on a notify socket
the test listens to, watchdog pings, pages served, SIGHUP puts a changed configuration in force
without a pause in service (and refuses an invalid one), SIGTERM lets a slow request finish and
exits 0, the access log has no query string, `/ca.crt` serves the box's CA."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import Daemon, archive_config, free_port, listening, wait_for, write_config

from appliance.systemd import ReloadState, reload_daemons

TESTS = Path(__file__).parents[1]


class Notifications:
    """A NOTIFY_SOCKET as systemd would offer it: every message received, in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[str] = []
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(path))
        self.socket.settimeout(0.2)
        self.open = True
        self.thread = threading.Thread(target=self.receive, daemon=True)
        self.thread.start()

    def receive(self) -> None:
        while self.open:
            try:
                self.messages.append(self.socket.recv(4096).decode())
            except TimeoutError:
                continue

    def close(self) -> None:
        self.open = False
        self.thread.join()
        self.socket.close()

    def lines(self) -> list[str]:
        return [line for message in list(self.messages) for line in message.splitlines()]


def web_config(data: Path, port: int, **overrides: Any) -> dict[str, Any]:
    web = {"bind_address": "127.0.0.1", "port": port, "workers": 1, "threads": 4, "secure_cookies": False}
    return archive_config(data, free_port(), web=web, **overrides)


def get(port: int, path: str, timeout: float = 30) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def shows_site_name(port: int, site_name: str) -> bool:
    """The login page names the practice (the first page anyone sees)."""
    status, page = get(port, "/login")
    return status == 200 and f"<title>Se connecter · {site_name}</title>" in page.decode()


@pytest.fixture()
def notifications(tmp_path: Path) -> Iterator[Notifications]:
    listener = Notifications(tmp_path / "notify.sock")
    yield listener
    listener.close()


def start_web(tmp_path: Path, config: dict[str, Any], notifications: Notifications) -> Daemon:
    config_path = write_config(tmp_path / "appliance.yaml", config)
    environment = {
        "NOTIFY_SOCKET": str(notifications.path),
        "WATCHDOG_USEC": "1000000",  # a ping every half second
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    return Daemon("slow_console", config_path, tmp_path / "web.log", environment=environment).start()


def test_ready_watchdog_pages_and_reload(tmp_path: Path, notifications: Notifications) -> None:
    port = free_port()
    config = web_config(tmp_path / "data", port, site_name="Cabinet Avant")
    daemon = start_web(tmp_path, config, notifications)
    try:
        assert daemon.port == port
        wait_for(lambda: "READY=1" in notifications.lines(), "READY=1")
        assert shows_site_name(port, "Cabinet Avant")
        wait_for(lambda: "WATCHDOG=1" in notifications.lines(), "a watchdog ping")

        write_config(daemon.config_path, {**config, "site_name": "Cabinet Après"})
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(lambda: shows_site_name(port, "Cabinet Après"), "the reloaded site name")
        assert notifications.lines().count("RELOADING=1") == 1
        wait_for(lambda: notifications.lines()[-1] in ("READY=1", "WATCHDOG=1"), "READY=1 after the reload")

        daemon.config_path.write_text("web:\n  workers: 0\n")
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "configuration not reloaded" in daemon.log(), "the refusal of an invalid file")
        assert shows_site_name(port, "Cabinet Après")
        assert "web.workers: 0 is less than the minimum of 1" in daemon.log()
    finally:
        assert daemon.stop() == 0


def test_sigterm_lets_the_request_in_flight_finish_then_exits_0(tmp_path: Path, notifications: Notifications) -> None:
    port = free_port()
    daemon = start_web(tmp_path, web_config(tmp_path / "data", port), notifications)
    answers: list[tuple[int, bytes]] = []
    slow = threading.Thread(target=lambda: answers.append(get(port, "/slow?seconds=3")))
    slow.start()
    wait_for(lambda: "slow request started" in daemon.log(), "the slow request to start")
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGTERM)
    wait_for(lambda: not listening(port), "the socket to be closed")
    assert daemon.process.poll() is None, "the daemon left before the request in flight finished"
    slow.join(timeout=30)
    assert answers == [(200, b"finished")]
    assert daemon.process.wait(timeout=60) == 0
    assert "STOPPING=1" in notifications.lines()


def test_access_lines_have_no_query_string(tmp_path: Path, notifications: Notifications) -> None:
    port = free_port()
    daemon = start_web(tmp_path, web_config(tmp_path / "data", port), notifications)
    try:
        assert get(port, "/login?PatientName=DUPONT^JEANNE&PatientBirthDate=19610203")[0] == 200
        wait_for(lambda: "GET /login 200" in daemon.log(), "the access line")
        assert "DUPONT" not in daemon.log() and "19610203" not in daemon.log()
    finally:
        daemon.stop()


def test_ca_certificate_is_served_once_made(tmp_path: Path, notifications: Notifications) -> None:
    port = free_port()
    daemon = start_web(tmp_path, web_config(tmp_path / "data", port), notifications)
    try:
        assert get(port, "/ca.crt")[0] == 404
        made = subprocess.run(
            [sys.executable, "-m", "appliance.cli", "tls", "ensure", "--config", str(daemon.config_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert made.returncode == 0, made.stderr
        status, body = get(port, "/ca.crt")
        assert status == 200
        assert body == (tmp_path / "tls" / "ca.crt").read_bytes()
    finally:
        daemon.stop()


def test_the_settings_pages_can_reload_the_console(tmp_path: Path, notifications: Notifications) -> None:
    """The arbiter keeps `<data>/run/appliance-web.pid`, so a saved setting reaches every worker."""
    port = free_port()
    daemon = start_web(tmp_path, web_config(tmp_path / "data", port, site_name="Cabinet Avant"), notifications)
    run = tmp_path / "data" / "run"
    try:
        assert (run / "appliance-web.pid").exists()
        write_config(daemon.config_path, web_config(tmp_path / "data", port, site_name="Cabinet Après"))
        answers = reload_daemons(run)
        assert [(answer.name, answer.state) for answer in answers] == [("appliance-web", ReloadState.RELOADED)]
        wait_for(lambda: shows_site_name(port, "Cabinet Après"), "the new site name in every worker")
    finally:
        assert daemon.stop() == 0
    assert not (run / "appliance-web.pid").exists()


def test_a_reload_is_confirmed_while_a_request_is_in_flight(tmp_path: Path, notifications: Notifications) -> None:
    """The settings page that asks for the reload is itself a request in flight in an old worker:
    the arbiter confirms before waiting for the old workers to leave."""
    port = free_port()
    daemon = start_web(tmp_path, web_config(tmp_path / "data", port), notifications)
    slow = threading.Thread(target=lambda: get(port, "/slow?seconds=4"))
    try:
        slow.start()
        wait_for(lambda: "slow request started" in daemon.log(), "the slow request to start")
        answers = reload_daemons(tmp_path / "data" / "run")
        assert [answer.state for answer in answers] == [ReloadState.RELOADED]
    finally:
        slow.join(timeout=30)
        assert daemon.stop() == 0
