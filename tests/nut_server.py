"""A real NUT: the `dummy-ups` driver and `upsd` on 127.0.0.1 (a free port), in a scratch folder,
run as the current user (as root they are told to stay root rather than drop to "nut", which could
not read a pytest folder). The test switches the simulated UPS between states by rewriting the
driver's .dev file, as a UPS on USB would change: on line -> on battery -> low battery -> on line.

Needs the Debian packages nut-server (dummy-ups, upsd) and nut-client (upsc). Shared by the monitor's
UPS source test and the alert mail test: `with nut_server(tmp_path) as ups: ups.set_status("OB DISCHRG")`.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from servers import free_port

NUT_LIBEXEC = Path("/lib/nut")
START_SECONDS = 20


@dataclass
class NutServer:
    """The running NUT: `name` of the UPS, upsd's `port` on 127.0.0.1, the driver's `device` file."""

    name: str
    port: int
    device: Path
    variables: dict[str, str] = field(default_factory=dict)
    written: float = 0.0

    def set_status(self, status: str, charge: int | None = None, runtime: int | None = None) -> None:
        """Make the simulated UPS report `status` (NUT flags: "OL", "OB DISCHRG", "OB DISCHRG LB"), and
        its battery charge (percent) and runtime (seconds) when given; returns at once (the driver
        reads the file again within a second or two: wait with `wait_for`)."""
        self.variables["ups.status"] = status
        if charge is not None:
            self.variables["battery.charge"] = str(charge)
        if runtime is not None:
            self.variables["battery.runtime"] = str(runtime)
        self.device.write_text("".join(f"{name}: {value}\n" for name, value in self.variables.items()))
        # dummy-ups ("dummy-once" mode) reads the file again when its modification time changes:
        # make it later than the last one even within the same second.
        self.written = max(time.time(), self.written) + 1
        os.utime(self.device, (self.written, self.written))

    def status(self) -> str:
        """ups.status as upsd serves it now (upsc), "" when upsd does not answer."""
        answer = subprocess.run(
            ["upsc", f"{self.name}@127.0.0.1:{self.port}", "ups.status"], capture_output=True, text=True, timeout=10
        )
        return answer.stdout.strip() if answer.returncode == 0 else ""

    def wait_for(self, status: str, timeout: float = START_SECONDS) -> None:
        wait_until(lambda: self.status() == status, timeout, f"upsd serving ups.status {status!r}")


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout} s for {what}")
        time.sleep(0.2)


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


@contextlib.contextmanager
def nut_server(directory: Path, name: str = "onduleur") -> Iterator[NutServer]:
    """dummy-ups and upsd serving UPS `name`, on line with a full battery, until the block ends
    (both stopped by their PIDs). Raises RuntimeError when NUT is not installed."""
    if not (NUT_LIBEXEC / "dummy-ups").exists() or not (NUT_LIBEXEC / "upsd").exists():
        raise RuntimeError("NUT is not installed: apt-get install nut-server nut-client")
    etc, state = directory / "nut-etc", directory / "nut-state"
    etc.mkdir(parents=True)
    state.mkdir(mode=0o700)
    server = NutServer(name, free_port(), etc / f"{name}.dev")
    server.variables.update({"device.mfr": "Simulated", "device.model": "Dummy 1500", "battery.charge": "100"})
    server.variables["battery.runtime"] = "1800"
    server.set_status("OL")
    write_configuration(etc, server)
    user = pwd.getpwuid(os.getuid()).pw_name
    environment = {**os.environ, "NUT_CONFPATH": str(etc), "NUT_STATEPATH": str(state), "NUT_ALTPIDPATH": str(state)}
    processes: list[subprocess.Popen[bytes]] = []
    with (directory / "nut.log").open("wb") as log:
        try:
            for command, ready in (
                ([str(NUT_LIBEXEC / "dummy-ups"), "-a", name, "-u", user, "-F"], (state / f"dummy-ups-{name}").exists),
                ([str(NUT_LIBEXEC / "upsd"), "-u", user, "-F"], lambda: listening(server.port)),
            ):
                processes.append(subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT))
                wait_until(ready, START_SECONDS, f"{Path(command[0]).name} started (see {log.name})")
            server.wait_for("OL")
            yield server
        finally:
            for process in reversed(processes):
                stop(process)


def write_configuration(etc: Path, server: NutServer) -> None:
    (etc / "ups.conf").write_text(
        f'[{server.name}]\n  driver = dummy-ups\n  port = {server.device}\n  pollinterval = 1\n  desc = "test"\n'
    )
    (etc / "upsd.conf").write_text(f"LISTEN 127.0.0.1 {server.port}\n")
    users = etc / "upsd.users"
    users.write_text("")
    users.chmod(0o600)
    (etc / "nut.conf").write_text("MODE=standalone\n")


def stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
