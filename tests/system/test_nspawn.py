"""The test tree booted in systemd-nspawn (seconds, no kernel, no disks): units start, the archive
binds its port, and the real NUT chain powers the container off in order on low battery.

The tree is booted with --volatile=overlay (changes go to a tmpfs and vanish) and
--private-network (nothing the container starts can listen on the host); /srv/appliance is a
scratch folder bound in place of the data mirror. Disk-owning units (storage setup, mdadm
monitor, smartd) skip themselves in containers (ConditionVirtualization=!container).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.nspawn, pytest.mark.timeout(600)]


class Container:
    """A booted systemd-nspawn container and the PID of its init."""

    def __init__(self, tree: Path, scratch: Path) -> None:
        self.console = scratch / "console.log"
        data = scratch / "srv"
        data.mkdir()
        self._log = open(self.console, "wb")  # noqa: SIM115  (closed in stop(), the process writes to it)
        self.process = subprocess.Popen(
            [
                "systemd-nspawn",
                "--quiet",
                "--register=no",
                "--keep-unit",
                "--private-network",
                "--volatile=overlay",
                f"--bind={data}:/srv/appliance",
                "--console=passive",
                "-D",
                str(tree),
                "--boot",
                "--",
                "systemd.mask=systemd-networkd-wait-online.service",
                # the root is nspawn's volatile overlay, not the image's LABEL=appliance-root
                "systemd.mask=systemd-remount-fs.service",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.init_pid = self._find_init()

    def _find_init(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            if children.exists() and children.read_text().split():
                pid = int(children.read_text().split()[0])
                # nspawn's child becomes the container's systemd only once it has exec'd it
                if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                    return pid
            if self.process.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited: {self.console.read_text(errors='replace')}")
            time.sleep(0.2)
        raise TimeoutError("systemd-nspawn started no init")

    def run(self, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["nsenter", "-t", str(self.init_pid), "-m", "-u", "-i", "-p", "-n", "/bin/sh", "-c", command],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def system_state(self, timeout: float = 240) -> str:
        """`systemctl is-system-running --wait`, retried while the container's manager is not reachable yet."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.run("systemctl is-system-running --wait", timeout=timeout).stdout.strip()
            if state and state not in ("offline", "unknown"):
                return state
            time.sleep(0.5)
        return "no answer"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # nspawn asks the container's init to power off
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture(scope="module")
def container(test_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    box = Container(test_tree, tmp_path_factory.mktemp("nspawn"))
    try:
        yield box
    finally:
        box.stop()


def test_boots_to_running_with_no_failed_unit(container: Container) -> None:
    state = container.system_state()
    failed = container.run("systemctl --failed --no-legend --plain").stdout
    assert state == "running", f"state {state!r}, failed units:\n{failed}"


def test_nut_driver_server_and_monitor_run(container: Container) -> None:
    for unit in ("nut-server.service", "nut-monitor.service"):
        assert container.run(f"systemctl is-active {unit}").stdout.strip() == "active", unit
    deadline = time.monotonic() + 30
    status = ""
    while time.monotonic() < deadline and status != "OL":
        status = container.run("upsc ups@localhost ups.status 2>/dev/null").stdout.strip()
        time.sleep(1)
    assert status == "OL"


def test_archive_daemon_is_ready_and_listening_on_104(container: Container) -> None:
    assert container.run("systemctl is-active appliance-dicom.service").stdout.strip() == "active"
    listening = container.run("cat /proc/net/tcp /proc/net/tcp6").stdout
    assert re.search(r":0068 [0-9A-F:]+ 0A ", listening), "nothing listens on port 104 (0x68)"
    owner = container.run("ps -o user= -C appliance-dicom; ps -o user=,args= -u appliance").stdout
    assert "appliance" in owner and "root" not in owner.split("\n")[0]


def test_low_battery_powers_the_container_off_in_order(container: Container) -> None:
    container.run("sed -i 's/^ups.status: .*/ups.status: OB DISCHRG LB/' /run/nut/ups-simulated.dev")
    container.process.wait(timeout=120)
    console = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", container.console.read_text(errors="replace"))
    assert "Unmounted srv-appliance.mount" in console or "Unmounting srv-appliance.mount" in console, console[-3000:]
    stopped = console.find("Stopped appliance-dicom.service")
    unmounting = console.find("Unmounting srv-appliance.mount")
    assert 0 <= stopped < unmounting, console[-3000:]
