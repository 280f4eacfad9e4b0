"""The UPS configuration the image carries, run for real on the build machine (loopback only).

The test tree's rendered NUT files (ups.conf, upsd.conf, upsd.users, upsmon.conf,
upssched.conf) are copied to a scratch folder; only paths, the port and the shutdown command are
rewritten. Then dummy-ups, upsd, upsmon and upssched run as on the box: on battery -> upssched
runs its command for "onbatt"; low battery -> upsmon runs SHUTDOWNCMD and writes POWERDOWNFLAG.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import run, wait_until
from vm import free_port

pytestmark = pytest.mark.host

NUT_LIBEXEC = Path("/lib/nut")


@pytest.fixture()
def nut_scratch(test_tree: Path) -> Iterator[dict[str, Path | int]]:
    if not (NUT_LIBEXEC / "dummy-ups").exists():
        pytest.fail("NUT is not installed on the build machine: run 'make image-deps'")
    # The daemons drop to the "nut" user: their folder must be reachable by it (pytest's is 0700).
    tmp_path = Path(tempfile.mkdtemp(prefix="appliance-nut-", dir="/tmp"))
    tmp_path.chmod(0o755)
    source = test_tree / "etc/nut"
    etc, state, out = tmp_path / "etc", tmp_path / "state", tmp_path / "out"
    for folder in (etc, state, out):
        folder.mkdir()
    port = free_port()
    ups_name = re.search(r"^\[(\S+)\]", (source / "ups.conf").read_text(), re.M).group(1)  # type: ignore[union-attr]
    device = etc / "simulated.dev"
    shutil.copyfile(source / f"{ups_name}-simulated.dev", device)

    (etc / "ups.conf").write_text(re.sub(r"port = \S+", f"port = {device}", (source / "ups.conf").read_text()))
    (etc / "upsd.conf").write_text(f"LISTEN 127.0.0.1 {port}\n")
    shutil.copyfile(source / "upsd.users", etc / "upsd.users")
    (etc / "nut.conf").write_text("MODE=standalone\n")
    record = out / "record-event"
    record.write_text(f'#!/bin/sh\necho "$1" >> {out}/events\n')
    record.chmod(0o755)
    sched = (source / "upssched.conf").read_text()
    sched = re.sub(r"^CMDSCRIPT .*$", f"CMDSCRIPT {record}", sched, flags=re.M)
    sched = re.sub(r"^PIPEFN .*$", f"PIPEFN {state}/upssched.pipe", sched, flags=re.M)
    sched = re.sub(r"^LOCKFN .*$", f"LOCKFN {state}/upssched.lock", sched, flags=re.M)
    (etc / "upssched.conf").write_text(sched)
    monitor = (source / "upsmon.conf").read_text()
    monitor = monitor.replace(f"{ups_name}@localhost", f"{ups_name}@127.0.0.1:{port}")
    monitor = re.sub(
        r"^SHUTDOWNCMD .*$", f"SHUTDOWNCMD \"/bin/sh -c 'date > {out}/shutdown-called'\"", monitor, flags=re.M
    )
    monitor = re.sub(r"^POWERDOWNFLAG .*$", f"POWERDOWNFLAG {out}/killpower", monitor, flags=re.M)
    monitor = re.sub(
        r"^NOTIFYCMD .*$", f"NOTIFYCMD {shutil.which('upssched') or '/sbin/upssched'}", monitor, flags=re.M
    )
    monitor = re.sub(r"^(POLLFREQ|POLLFREQALERT) .*$", r"\1 1", monitor, flags=re.M)
    monitor = re.sub(r"^FINALDELAY .*$", "FINALDELAY 0", monitor, flags=re.M)
    (etc / "upsmon.conf").write_text(monitor + "RUN_AS_USER root\n")
    for path in (etc, state, out, *etc.iterdir()):
        shutil.chown(path, "nut", "nut")

    env = {**os.environ, "NUT_CONFPATH": str(etc), "NUT_STATEPATH": str(state), "NUT_ALTPIDPATH": str(state)}
    processes: list[subprocess.Popen[bytes]] = []
    logs = open(out / "daemons.log", "wb")  # noqa: SIM115  (closed in the finally below)
    try:
        for command in (
            [str(NUT_LIBEXEC / "dummy-ups"), "-a", ups_name, "-u", "nut", "-D"],
            [str(NUT_LIBEXEC / "upsd"), "-u", "nut", "-D"],
            [str(NUT_LIBEXEC / "upsmon"), "-D"],
        ):
            processes.append(
                subprocess.Popen(command, env=env, stdout=logs, stderr=subprocess.STDOUT, start_new_session=True)
            )
            time.sleep(1.5)
        yield {"device": device, "out": out, "port": port, "ups": ups_name}  # type: ignore[misc]
    finally:
        for process in reversed(processes):  # each in its own process group: upsmon forks a helper
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        logs.close()
        # upssched forks a timer daemon of its own; stop it by the PID it recorded.
        stop_recorded_process(state / "upssched.pid")
        if not os.environ.get("APPLIANCE_KEEP_SCRATCH"):
            shutil.rmtree(tmp_path, ignore_errors=True)


def stop_recorded_process(pid_file: Path) -> None:
    if pid_file.exists():
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)


def set_status(device: Path, status: str) -> None:
    text = re.sub(r"^ups\.status: .*$", f"ups.status: {status}", device.read_text(), flags=re.M)
    device.write_text(text)
    future = time.time() + 1  # dummy-once re-reads the file when its mtime changes
    os.utime(device, (future, future))


def test_low_battery_runs_the_shutdown_command(nut_scratch: dict) -> None:  # type: ignore[type-arg]
    device, out, port, ups = nut_scratch["device"], nut_scratch["out"], nut_scratch["port"], nut_scratch["ups"]

    def status() -> str:
        return run(["upsc", f"{ups}@127.0.0.1:{port}", "ups.status"], check=False).stdout.strip()

    wait_until(lambda: status() == "OL", 20, "the simulated UPS on line", interval=0.5)
    assert not (out / "shutdown-called").exists()

    set_status(device, "OB DISCHRG")
    wait_until(
        lambda: "onbatt" in ((out / "events").read_text() if (out / "events").exists() else ""),
        30,
        "upssched's onbatt command",
    )
    assert not (out / "shutdown-called").exists(), "on battery alone must not shut down"

    set_status(device, "OB DISCHRG LB")
    wait_until(lambda: (out / "shutdown-called").exists(), 30, "upsmon's SHUTDOWNCMD", interval=0.5)
    assert (out / "killpower").exists(), "POWERDOWNFLAG not written: the UPS would not cut the power"
