"""PID files and the console's reload request: a real child process that records SIGHUP the way a
daemon does (through `appliance.systemd`), stale files, PIDs reused by another process."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance import systemd
from appliance.systemd import ReloadState

# A daemon in miniature: PID file, SIGHUP counted as a reload, SIGTERM removes the file.
CHILD = """
import signal, sys, threading
from pathlib import Path
from appliance import systemd

run, name, record = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
signals = systemd.Signals()
signals.install()
path = systemd.write_pid_file(run, name)
print("running", flush=True)
while not signals.stopping:
    signals.wait(5)
    if signals.take_reload():
        with record.open("a") as file:
            file.write("SIGHUP\\n")
        if sys.argv[4] == "answers":
            systemd.mark_reloaded(path)
systemd.remove_pid_file(path)
"""


def start_child(run: Path, name: str, record: Path, answers: bool = True) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(run), name, str(record), "answers" if answers else "silent"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "running"
    return process


@pytest.fixture()
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)


def test_every_live_daemon_gets_sighup_and_says_it_reloaded(
    tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    run = tmp_path / "run"
    children.append(start_child(run, "appliance-dicom", tmp_path / "dicom.txt"))
    children.append(start_child(run, "appliance-hl7", tmp_path / "hl7.txt"))
    answers = systemd.reload_daemons(run)
    assert [(answer.name, answer.state) for answer in answers] == [
        ("appliance-dicom", ReloadState.RELOADED),
        ("appliance-hl7", ReloadState.RELOADED),
    ]
    assert [answer.pid for answer in answers] == [process.pid for process in children]
    assert (tmp_path / "dicom.txt").read_text() == "SIGHUP\n"
    assert systemd.reload_daemons(run)[0].state == ReloadState.RELOADED  # and again
    assert (tmp_path / "dicom.txt").read_text() == "SIGHUP\nSIGHUP\n"


def test_a_daemon_that_does_not_answer_is_reported_so(tmp_path: Path, children: list[subprocess.Popen[str]]) -> None:
    run = tmp_path / "run"
    children.append(start_child(run, "appliance-worker", tmp_path / "worker.txt", answers=False))
    started = time.monotonic()
    answers = systemd.reload_daemons(run, wait_seconds=0.3)
    assert [answer.state for answer in answers] == [ReloadState.NO_ANSWER]
    assert time.monotonic() - started < 5
    time.sleep(0.2)
    assert (tmp_path / "worker.txt").read_text() == "SIGHUP\n"


def test_the_pid_file_goes_when_the_daemon_stops(tmp_path: Path, children: list[subprocess.Popen[str]]) -> None:
    run = tmp_path / "run"
    process = start_child(run, "appliance-dicom", tmp_path / "record.txt")
    children.append(process)
    assert (run / "appliance-dicom.pid").exists()
    process.terminate()
    process.wait(timeout=10)
    assert not (run / "appliance-dicom.pid").exists()
    assert systemd.reload_daemons(run) == []


def test_a_stale_or_reused_pid_is_never_signalled(tmp_path: Path, children: list[subprocess.Popen[str]]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    children.append(bystander)  # type: ignore[arg-type]
    (run / "appliance-gone.pid").write_text("999999999 12 0\n")
    (run / "appliance-reused.pid").write_text(f"{bystander.pid} 1 0\n")  # the PID, but not its start
    answers = systemd.reload_daemons(run)
    assert [(answer.name, answer.state) for answer in answers] == [
        ("appliance-gone", ReloadState.NOT_RUNNING),
        ("appliance-reused", ReloadState.NOT_RUNNING),
    ]
    assert bystander.poll() is None  # SIGHUP would have killed it
    assert list(run.iterdir()) == []


def test_the_console_does_not_signal_itself(tmp_path: Path) -> None:
    path = systemd.write_pid_file(tmp_path, "appliance-web")
    assert systemd.read_pid_file(path).pid == os.getpid()
    assert systemd.reload_daemons(tmp_path) == []
    systemd.remove_pid_file(path)
    assert not path.exists()


# A main loop as the daemons run it, counting what it was asked; then a burst of signals.
BURST_CHILD = """
import signal, sys
from appliance import systemd

signals = systemd.Signals()
woken = []
signals.install({signal.SIGUSR1: lambda: woken.append(1)})
print("running", flush=True)
reloads = 0
while not signals.stopping:
    signals.wait(5)
    reloads += signals.take_reload()
print(f"stopped on {signals.received} after {reloads} reload(s), {len(woken)} wake-up(s)", flush=True)
"""


def test_signals_close_together_never_hang_the_main_loop() -> None:
    """Two signals close together (Ctrl-C on `make run`: SIGINT to every daemon, then the supervisor's
    SIGTERM) once left a daemon waiting forever on the lock its own handler held."""
    process = subprocess.Popen([sys.executable, "-c", BURST_CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "running"
        end, numbers = time.monotonic() + 1, itertools.cycle([signal.SIGHUP, signal.SIGUSR1])
        while time.monotonic() < end:  # for a second: the old handler hung within it, every time
            os.kill(process.pid, next(numbers))
        os.kill(process.pid, signal.SIGINT)
        os.kill(process.pid, signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    said = output.strip()
    assert said.startswith("stopped on 2 ") or said.startswith("stopped on 15 "), said
    assert " 0 reload(s)" not in said and " 0 wake-up(s)" not in said, said
