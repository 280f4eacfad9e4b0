"""Start the real daemons for integration tests: subprocesses on 127.0.0.1, free ports, logs kept."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

TEST_PEERS = ["ECHOSCU", "STORESCU", "FINDSCU", "GETSCU", "MOVESCU", "PYNETDICOM"]


WAIT_SECONDS = 60


def wait_for(condition: Callable[[], object], what: str, seconds: float = WAIT_SECONDS) -> None:
    """Poll until `condition()` is true; the deadline only stops a hung test (no timing assertion)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what}")
        time.sleep(0.05)


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on host:port."""
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, port)) == 0


def wait_for_port(port: int, what: str, process: subprocess.Popen[Any] | None = None) -> None:
    """Wait until `port` accepts connections (a peer started in the background is ready)."""

    def ready() -> bool:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode} before listening on {port}")
        return listening(port)

    wait_for(ready, f"{what} listening on port {port}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def archive_config(data: Path, destination_port: int, **overrides: Any) -> dict[str, Any]:
    """A production-mode configuration: DCMTK and pynetdicom default AE titles as known peers."""
    peers = [{"ae_title": title, "host": "127.0.0.1", "rights": ["store", "query", "retrieve"]} for title in TEST_PEERS]
    peers += [
        {"ae_title": "STORESCP", "host": "127.0.0.1", "port": destination_port, "rights": ["store"]},
        {"ae_title": "QUERYONLY", "host": "127.0.0.1", "rights": ["query"]},
        {"ae_title": "ELSEWHERE", "host": "192.0.2.10", "rights": ["store", "query", "retrieve"]},
    ]
    config: dict[str, Any] = {
        "mode": "production",
        "storage": {"data_directory": str(data), "minimum_free_space_mb": 1},
        "dicom": {"ae_title": "APPLIANCE", "bind_address": "127.0.0.1", "port": 0},
        "peers": peers,
        "lossless": {"delay_seconds": 0},
        "logging": {"level": "INFO"},
    }
    for section, values in overrides.items():
        if isinstance(values, dict):
            config[section] = {**config.get(section, {}), **values}
        else:
            config[section] = values
    return config


@dataclass
class Daemon:
    """One daemon process started with a configuration file; `port` read from its first line."""

    module: str
    config_path: Path
    log_path: Path
    process: subprocess.Popen[str] | None = None
    port: int = 0
    environment: dict[str, str] = field(default_factory=dict)

    def start(self, timeout: float = 60) -> Daemon:
        """Start it and wait, `timeout` at most, for its "listening on" or "running" line. Raises
        RuntimeError, with the end of its log, when it exits first or says nothing in time: a daemon
        that hangs is then named, with its threads' Python stacks in the log (Python's fault handler,
        on here, writes them on the SIGABRT it gets), instead of blocking the test. Its output is
        read by a thread for as long as it runs."""
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", launcher(self.module), "--config", str(self.config_path)],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env={**os.environ, "PYTHONFAULTHANDLER": "1", **self.environment},
            )
        lines = read_lines(self.process)
        deadline = time.monotonic() + timeout
        line = None
        while line is None or ("listening on" not in line and "running" not in line):
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.abort()
                raise RuntimeError(f"{self.module} said nothing in {timeout:.0f} s: {self.log()[-8000:]}") from None
            if not line:  # its output ended: it exits
                self.process.wait(timeout=30)
                raise RuntimeError(f"{self.module} exited: {self.log()[-3000:]}")
        if "listening on" in line:
            self.port = int(line.rsplit(":", 1)[1])
        return self

    def abort(self) -> None:
        """SIGABRT (its stacks written to its log), then SIGKILL if it is still there."""
        assert self.process is not None
        self.process.send_signal(signal.SIGABRT)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text()


def read_lines(process: subprocess.Popen[str]) -> queue.Queue[str]:
    """The lines `process` writes to its standard output, read by a thread as they come; an empty
    string once the output has ended (every process that held it has closed it)."""
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()

    def read(stream: IO[str]) -> None:
        for line in stream:
            lines.put(line)
        lines.put("")

    threading.Thread(target=read, args=(process.stdout,), daemon=True).start()
    return lines


def launcher(module: str) -> str:
    """Python code running `module`'s main() as its console script would."""
    return f"import sys; from {module} import main; sys.exit(main(sys.argv[1:]))"


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def run(command: list[str], timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a DCMTK tool (or any command) with TCP_NODELAY set, capturing its output."""
    environment = {**os.environ, "TCP_NODELAY": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment)
    if check and result.returncode != 0:
        raise AssertionError(f"{command[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def cli(config_path: Path, *arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `appliance ARGUMENTS --config CONFIG`."""
    command = [sys.executable, "-m", "appliance.cli", *arguments, "--config", str(config_path)]
    return run(command, check=check)


def associate(port: int, *contexts: str, ae_title: str = "PYNETDICOM", dimse_timeout: float = 30) -> Any:
    """A pynetdicom association to the archive with TCP_NODELAY set (as every DICOM socket must)."""
    from pynetdicom import AE, evt

    from appliance.dicom.pynetdicom_patches import set_no_delay

    ae = AE(ae_title=ae_title)
    ae.dimse_timeout = dimse_timeout
    for context in contexts:
        ae.add_requested_context(context)
    return ae.associate("127.0.0.1", port, ae_title="APPLIANCE", evt_handlers=[(evt.EVT_CONN_OPEN, set_no_delay)])


def get_study(
    port: int, directory: Path, *keys: str, options: tuple[str, ...] = (), calling: str = "GETSCU"
) -> list[Path]:
    """C-GET with DCMTK's getscu (study root) into `directory`; keys as `-k` values; the files received."""
    directory.mkdir(parents=True, exist_ok=True)
    command = ["getscu", *options, "-S", "-aet", calling, "-aec", "APPLIANCE", "-od", str(directory)]
    for key in keys:
        command += ["-k", key]
    run([*command, "127.0.0.1", str(port)])
    return sorted(directory.iterdir())
