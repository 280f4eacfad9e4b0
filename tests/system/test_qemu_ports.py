"""The VM harness when two test lanes start their VMs at the same moment: a forwarded port taken
between free_port() and qemu's bind makes qemu stop at once; the harness starts it again on other
ports instead of failing the lane. A real qemu on a small blank disk (nothing boots)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import vm as vm_module
from harness import run
from vm import ApplianceVM

pytestmark = pytest.mark.host


def test_a_port_taken_before_qemu_binds_it_is_chosen_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = tmp_path / "blank.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "64M"])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        taken_port = int(taken.getsockname()[1])
        ports = iter([taken_port])
        real_free_port = vm_module.free_port
        monkeypatch.setattr(vm_module, "free_port", lambda: next(ports, None) or real_free_port())
        machine = ApplianceVM(image=image, workdir=tmp_path / "vm", ssh_key=tmp_path / "no-key", data_disks=0)
        machine.start()
        try:
            with pytest.raises(TimeoutError):
                machine.wait_ssh(timeout=8)
            assert machine.running(), (machine.workdir / "qemu.log").read_text()
            assert machine.host_ports["ssh"] != taken_port
            log = (machine.workdir / "qemu.log").read_text()
            assert log.count("Could not set up host forwarding rule") == 1, log
        finally:
            machine.stop()
