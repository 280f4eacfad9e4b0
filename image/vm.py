#!/usr/bin/env python3
"""Boot the appliance image in qemu (TCG, UEFI) with throwaway disks; used by `make vm-run`
and by the boot tests in tests/system/.

The built image is never modified: the first system disk is a qcow2 overlay backed by it; the
second system disk and the data disks are blank qcow2 files, so the box goes through its real
first boot (root mirror created in the initramfs, completed onto the second disk, data mirror
created on the blank data disks). Every forwarded port is bound to 127.0.0.1 and chosen free at
start; the guest network is qemu's user network with restrict=on (the guest can reach nothing,
not even the host; only the forwarded ports come in).

Command line (stdlib only, runs with the host's python3):
    python3 image/vm.py run --image build/image/appliance.qcow2 [--workdir DIR] [--data-disks N]
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
SSH_OPTIONS = [
    "-o", "BatchMode=yes",
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=5",
    "-o", "ServerAliveInterval=5",
    "-o", "ServerAliveCountMax=3",
]


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, stdout=subprocess.DEVNULL)


def virtual_size(image: Path) -> int:
    out = subprocess.run(["qemu-img", "info", "--output=json", str(image)],
                         check=True, capture_output=True, text=True).stdout
    import json
    return int(json.loads(out)["virtual-size"])


@dataclass
class Disk:
    """One disk of the VM: its qemu id, file and bus (virtio or nvme)."""
    ident: str
    path: Path
    bus: str
    serial: str


@dataclass
class ApplianceVM:
    """A qemu process running the appliance image with its disks, sockets and logs in workdir."""
    image: Path
    workdir: Path
    ssh_key: Path | None = None
    data_disks: int = 2
    data_disk_size: str = "1G"
    # A smaller blank disk standing for the practice's USB backup disk ("" = none): the storage
    # setup leaves it alone (it builds the data mirror on the two largest blank disks).
    backup_disk_size: str = ""
    memory_mib: int = 2048
    # One vCPU by default: with two, qemu 7.2's multi-threaded TCG sometimes lets the guest
    # kernel oops on an int3 while it live-patches its own code (seen here: "Oops: int3" in
    # sched_clock_cpu, then a panic). APPLIANCE_VM_CPUS=2 is faster when it works.
    cpus: int = int(os.environ.get("APPLIANCE_VM_CPUS", "1"))
    guest_ports: dict[str, int] = field(default_factory=lambda: {"ssh": 22, "dicom": 104})
    host_ports: dict[str, int] = field(default_factory=dict)
    disks: list[Disk] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    launched_at: int = 0  # where this launch's lines start in qemu.log

    # --- disks ---------------------------------------------------------------------------
    def create_disks(self) -> None:
        """Make the overlay of the image and the blank disks (only if they do not exist yet)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        image_format = "qcow2" if self.image.suffix == ".qcow2" else "raw"
        size = virtual_size(self.image)
        self.disks = [
            Disk("sys0", self.workdir / "sys0.qcow2", "virtio", "SYS0"),
            Disk("sys1", self.workdir / "sys1.qcow2", "virtio", "SYS1"),
        ] + [Disk(f"data{i}", self.workdir / f"data{i}.qcow2", "nvme", f"DATA{i}")
             for i in range(self.data_disks)]
        if self.backup_disk_size:
            self.disks.append(Disk("backup0", self.workdir / "backup0.qcow2", "virtio", "BACKUP0"))
        for disk in self.disks:
            if disk.path.exists():
                continue
            if disk.ident == "sys0":
                qemu_img("create", "-f", "qcow2", "-b", str(self.image.resolve()), "-F", image_format,
                         str(disk.path))
            elif disk.ident == "sys1":
                qemu_img("create", "-f", "qcow2", str(disk.path), str(size))
            elif disk.ident == "backup0":
                qemu_img("create", "-f", "qcow2", str(disk.path), self.backup_disk_size)
            else:
                qemu_img("create", "-f", "qcow2", str(disk.path), self.data_disk_size)
        vars_copy = self.workdir / "OVMF_VARS.fd"
        if not vars_copy.exists():
            shutil.copyfile(OVMF_VARS, vars_copy)

    # --- process -------------------------------------------------------------------------
    @property
    def serial_log(self) -> Path:
        return self.workdir / "serial.log"

    @property
    def monitor_socket(self) -> Path:
        return self.workdir / "monitor.sock"

    def command(self) -> list[str]:
        forwards = ",".join(f"hostfwd=tcp:127.0.0.1:{self.host_ports[name]}-:{port}"
                            for name, port in self.guest_ports.items())
        args = [
            "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg,thread=multi", "-cpu", "max",
            "-smp", str(self.cpus), "-m", str(self.memory_mib), "-display", "none", "-no-user-config",
            "-nodefaults", "-vga", "none",
            "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,file={self.workdir / 'OVMF_VARS.fd'}",
            "-netdev", f"user,id=lan,restrict=on,{forwards}",
            "-device", "virtio-net-pci,netdev=lan",
            "-chardev", f"file,id=serial0,path={self.serial_log}",
            "-serial", "chardev:serial0",
            "-monitor", f"unix:{self.monitor_socket},server=on,wait=off",
            "-device", "virtio-rng-pci",
        ]
        for disk in self.disks:
            args += ["-drive", f"file={disk.path},if=none,format=qcow2,id={disk.ident}drv"]
            if disk.bus == "nvme":
                args += ["-device", f"nvme,id={disk.ident},serial={disk.serial},drive={disk.ident}drv"]
            else:
                args += ["-device", f"virtio-blk-pci,id={disk.ident},serial={disk.serial},drive={disk.ident}drv"]
        return args

    def start(self) -> None:
        """Start qemu in the background (its own process group, killed by stop())."""
        self.create_disks()
        self.launch()

    def launch(self) -> None:
        """Start qemu on freshly chosen host ports."""
        self.host_ports = {name: free_port() for name in self.guest_ports}
        self.launched_at = (self.workdir / "qemu.log").stat().st_size if (self.workdir / "qemu.log").exists() else 0
        if self.serial_log.exists():
            self.serial_log.rename(self.workdir / f"serial.{int(time.time())}.log")
        with open(self.workdir / "qemu.log", "ab") as log:
            self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        (self.workdir / "qemu.pid").write_text(f"{self.process.pid}\n")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_exit(self, timeout: float) -> bool:
        """Wait until qemu exits by itself (guest power-off); True if it did."""
        if self.process is None:
            return True
        try:
            self.process.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self) -> None:
        """Kill qemu (and anything in its process group) if it still runs."""
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=30)
        self.process = None

    # --- talking to the guest ------------------------------------------------------------
    def ssh(self, command: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a shell command as root in the guest over the forwarded ssh port."""
        if self.ssh_key is None:
            raise RuntimeError("no ssh key: the test image's key is needed to log in")
        result = subprocess.run(
            ["ssh", *SSH_OPTIONS, "-i", str(self.ssh_key), "-p", str(self.host_ports["ssh"]),
             "root@127.0.0.1", command],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"in the VM, {command!r} exited {result.returncode}:\n"
                               f"{result.stdout}\n{result.stderr}")
        return result

    def wait_ssh(self, timeout: float) -> float:
        """Poll until ssh answers; return the seconds it took. Raise if qemu dies or time runs out."""
        start = time.monotonic()
        relaunches = 0
        while time.monotonic() - start < timeout:
            if not self.running() and self.lost_a_port() and relaunches < 3:
                relaunches += 1
                self.launch()
            elif not self.running():
                raise RuntimeError(f"qemu exited during boot; see {self.serial_log}")
            try:
                if self.ssh("true", timeout=15, check=False).returncode == 0:
                    return time.monotonic() - start
            except subprocess.TimeoutExpired:
                pass
            time.sleep(2)
        raise TimeoutError(f"no ssh after {timeout} s; see {self.serial_log}")

    def lost_a_port(self) -> bool:
        """Whether qemu stopped because a forwarded port was taken between free_port() and its
        bind (another VM of a parallel test lane starting at the same moment)."""
        with open(self.workdir / "qemu.log", "rb") as log:
            log.seek(self.launched_at)
            return b"host forwarding rule" in log.read()

    def monitor(self, command: str) -> str:
        """Send one human-monitor command to qemu and return its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(str(self.monitor_socket))
            reply = b""

            def read_until_prompt() -> bytes:
                data = b""
                while not data.endswith(b"(qemu) "):
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                return data

            read_until_prompt()
            sock.sendall(command.encode() + b"\n")
            reply = read_until_prompt()
        text = reply.decode(errors="replace").replace("\r", "")
        lines = [line for line in text.split("\n") if line and not line.startswith("(qemu)")
                 and command not in line]
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="boot the image and wait until it powers off (Ctrl-C kills it)")
    run.add_argument("--image", type=Path, required=True)
    run.add_argument("--workdir", type=Path, default=None, help="keep the disks here (default: a temp dir)")
    run.add_argument("--data-disks", type=int, default=2)
    run.add_argument("--ssh-key", type=Path, default=None)
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="appliance-vm-"))
    vm = ApplianceVM(image=args.image, workdir=workdir, ssh_key=args.ssh_key, data_disks=args.data_disks,
                     guest_ports={"ssh": 22, "dicom": 104, "worklist": 105, "hl7": 2575, "http": 80,
                                  "https": 443})
    vm.start()
    print(f"qemu pid {vm.process.pid if vm.process else '?'}; disks and logs in {workdir}")
    for name, port in vm.host_ports.items():
        print(f"  {name:8} 127.0.0.1:{port} -> guest port {vm.guest_ports[name]}")
    print(f"  serial console log: {vm.serial_log} (tail -f it)")
    print(f"  qemu monitor: socat - UNIX-CONNECT:{vm.monitor_socket}")
    if args.ssh_key:
        print(f"  ssh -i {args.ssh_key} -p {vm.host_ports['ssh']} -o StrictHostKeyChecking=no root@127.0.0.1")
    try:
        while vm.running():
            time.sleep(1)
    except KeyboardInterrupt:
        print("stopping the VM")
    finally:
        vm.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
