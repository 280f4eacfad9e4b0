"""The health monitor on the booted image (issue 9, "the image"): a failed data-disk member turns the
RAID finding critical in `health_state` and a mail arrives within 60 s; re-added, the array's
rebuild progress is shown, then it is OK again.

Its own VM (two system and two data disks), since test_vm.py ends by powering its VM off. The mail
sink runs in the VM: aiosmtpd (in the appliance's venv, from the lock file) on 127.0.0.1:2525,
started with systemd-run, writing a Maildir; the box's configuration is pointed at it and
appliance-monitor reloaded. The VM's network is restrict=on, so nothing leaves it.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import TEST_KEY, VM_WORK, dcmtk, make_ct_image, wait_until
from vm import ApplianceVM

pytestmark = [
    pytest.mark.vm,
    pytest.mark.timeout(1800),
]

PYTHON = "/opt/appliance/venv/bin/python"
SINK_PORT = 2525
MAIL_DIR = "/var/tmp/mail-sink"
CONFIG = "/etc/appliance/appliance.yaml"
# Slow the rebuild down enough (KB/s) for a round to see it in progress; restored afterwards.
REBUILD_SPEED_KB = 8000

STATES = f"""runuser -u appliance -- {PYTHON} - <<'EOF'
import json
from appliance.config import load_config
from appliance.db import create_index_engine
from appliance.monitor import store
from pathlib import Path
engine = create_index_engine(load_config(Path("{CONFIG}")).database_url)
print(json.dumps([[s.source, s.subject, s.severity.value, s.message] for s in store.current(engine)]))
EOF"""

MAILS = f"""{PYTHON} - <<'EOF'
import email, email.policy, json, pathlib
mails = []
for path in sorted(pathlib.Path("{MAIL_DIR}/new").glob("*"), key=lambda p: p.stat().st_mtime):
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    mails.append([str(message["Subject"]), message.get_body(("plain",)).get_content()])
print(json.dumps(mails))
EOF"""


def states(vm: ApplianceVM, source: str) -> list[list[str]]:
    found = json.loads(vm.ssh(STATES).stdout)
    return [state for state in found if state[0] == source]


def mails(vm: ApplianceVM) -> list[list[str]]:
    return json.loads(vm.ssh(MAILS).stdout) if vm.ssh(f"test -d {MAIL_DIR}/new", check=False).returncode == 0 else []


def array_state(vm: ApplianceVM, array: str) -> dict[str, str]:
    sysfs = f"/sys/block/$(basename $(readlink -f {array}))/md"
    out = vm.ssh(
        f"mdadm --detail --export {array} 2>/dev/null; echo DEGRADED=$(cat {sysfs}/degraded 2>/dev/null); "
        f"echo SYNC=$(cat {sysfs}/sync_action 2>/dev/null)",
        check=False,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def mirror_complete(vm: ApplianceVM) -> bool:
    state = array_state(vm, "/dev/md/data")
    return state.get("DEGRADED") == "0" and state.get("SYNC") == "idle" and state.get("MD_DEVICES") == "2"


def mail_diagnostics(vm: ApplianceVM) -> str:
    """What to read when no alert arrived: the monitor's journal, the mail settings, the sink."""
    return vm.ssh(
        f"journalctl -b -u appliance-monitor --no-pager | tail -n 60; grep -A8 '^mail:' {CONFIG}; "
        f"systemctl status test-mail-sink --no-pager | tail -n 20; ls -l {MAIL_DIR}/new {MAIL_DIR}/tmp",
        check=False,
    ).stdout


def start_mail_sink(vm: ApplianceVM) -> None:
    """aiosmtpd in the VM, and the box's configuration pointing its alerts there. The Maildir is made
    whole beforehand (Python's mailbox creates tmp/new/cur only for a folder that does not exist)."""
    vm.ssh(
        f"mkdir -p {MAIL_DIR}/tmp {MAIL_DIR}/new {MAIL_DIR}/cur && "
        f"systemd-run --unit=test-mail-sink {PYTHON} -m aiosmtpd -n "
        f"-l 127.0.0.1:{SINK_PORT} -c aiosmtpd.handlers.Mailbox {MAIL_DIR}"
    )
    wait_until(
        lambda: f":{SINK_PORT}" in vm.ssh("ss -ltn", check=False).stdout, 60, "the mail sink in the VM listening"
    )
    vm.ssh(
        f"sed -i -e 's/^  relay_host: .*/  relay_host: \"127.0.0.1\"/' "
        f"-e 's/^  relay_port: .*/  relay_port: {SINK_PORT}/' "
        f"-e 's/^  recipients: .*/  recipients: [\"secretariat@cabinet.example.fr\"]/' {CONFIG} "
        "&& systemctl reload appliance-monitor"
    )


@pytest.fixture(scope="module")
def health_vm(test_image: Path) -> Iterator[ApplianceVM]:
    """One boot for this module: two system disks, two data disks, and a small blank disk that the
    backup test formats as the practice's USB disk (the storage setup leaves it alone)."""
    workdir = VM_WORK / "health"
    shutil.rmtree(workdir, ignore_errors=True)
    ports = {"ssh": 22, "dicom": 104}
    vm = ApplianceVM(
        image=test_image, workdir=workdir, ssh_key=TEST_KEY, data_disks=2, backup_disk_size="256M", guest_ports=ports
    )
    vm.start()
    try:
        vm.wait_ssh(timeout=420)
        yield vm
    finally:
        vm.stop()


def test_a_failed_data_member_is_critical_and_mailed_within_a_minute_then_rebuilt(health_vm: ApplianceVM) -> None:
    vm = health_vm
    state = vm.ssh("systemctl is-system-running --wait", timeout=400, check=False).stdout.strip()
    assert state == "running", vm.ssh("systemctl --failed --no-legend --plain", check=False).stdout
    assert vm.ssh("systemctl is-active appliance-monitor", check=False).stdout.strip() == "active"
    wait_until(lambda: mirror_complete(vm), 400, "the data mirror to be in sync")
    start_mail_sink(vm)
    wait_until(
        lambda: [s for s in states(vm, "raid") if s[2] == "ok"] and not [s for s in states(vm, "raid") if s[2] != "ok"],
        180,
        "the monitor to see every RAID array OK",
    )
    mails_before = len(mails(vm))

    detail = array_state(vm, "/dev/md/data")
    member = next(value for key, value in detail.items() if key.startswith("MD_DEVICE_") and key.endswith("_DEV"))
    failed_at = time.monotonic()
    vm.ssh(f"mdadm --manage /dev/md/data --fail {member}")
    critical = wait_until(
        lambda: [s for s in states(vm, "raid") if s[2] == "critical"], 90, "the RAID finding to turn critical", 1
    )
    seen_after = time.monotonic() - failed_at
    try:
        alert = wait_until(
            lambda: [m for m in mails(vm)[mails_before:] if "CRITIQUE" in m[0] and "raid / " in m[1]],
            120,
            "the alert mail",
            1,
        )
    except AssertionError:
        print(mail_diagnostics(vm))
        raise
    mailed_after = time.monotonic() - failed_at
    print(
        f"disk failed -> RAID critical in health_state: {seen_after:.1f} s; -> mail in the sink: {mailed_after:.1f} s"
    )
    print(f"finding: {critical}\nmail: {alert[0][0]}\n{alert[0][1]}")
    assert mailed_after <= 60, f"the alert took {mailed_after:.0f} s"
    journal = vm.ssh("journalctl -b -u appliance-monitor --no-pager | grep 'health alert:'", check=False).stdout
    assert "raid/" in journal, journal

    vm.ssh(f"echo {REBUILD_SPEED_KB} > /proc/sys/dev/raid/speed_limit_max")
    vm.ssh(
        f"mdadm --manage /dev/md/data --remove {member} && mdadm --zero-superblock {member} "
        f"&& mdadm --manage /dev/md/data --add {member}"
    )
    seen: list[Any] = []

    def progress_then_ok() -> bool:
        raid = states(vm, "raid")
        seen.extend(state for state in raid if state[2] != "ok")
        return bool(raid) and all(state[2] == "ok" for state in raid) and mirror_complete(vm)

    wait_until(progress_then_ok, 600, "the rebuild to finish and the RAID finding to be OK again", 2)
    vm.ssh("echo 200000 > /proc/sys/dev/raid/speed_limit_max")
    assert any("%" in state[3] for state in seen), f"no rebuild progress shown: {seen}"
    print(f"during the rebuild: {sorted({state[3] for state in seen})}")


# --- the backup (issue 10, "the image") ---------------------------------------------------------
# Every command reads the box's configuration (--config belongs to each subcommand).
APPLIANCE = f"env APPLIANCE_CONFIG={CONFIG} /opt/appliance/venv/bin/appliance"
USB_LABEL = "PACS-BACKUP-1"


def test_a_backup_to_the_usb_disk_then_a_study_and_the_index_restored(health_vm: ApplianceVM, tmp_path: Path) -> None:
    """The units and tools are installed; a study stored over DICOM is backed up to the small disk
    formatted as the practice's USB disk (found by its label, mounted, checked, unmounted), then
    brought back through the normal ingest (identical: a duplicate) and the index snapshot restored
    and checked elsewhere."""
    vm = health_vm
    for unit in (
        "appliance-backup.timer",
        "appliance-backup.service",
        "appliance-drill.timer",
        "appliance-tunnel.service",
    ):
        assert vm.ssh(f"systemctl cat {unit} >/dev/null", check=False).returncode == 0, f"{unit} not installed"
    assert vm.ssh("/opt/appliance/venv/bin/borgmatic --version && borg --version && command -v autossh").returncode == 0

    image = tmp_path / "ct.dcm"
    uids = make_ct_image(image)
    stored = dcmtk(
        "storescu", "-aet", "STORESCU", "-aec", "APPLIANCE", "127.0.0.1", str(vm.host_ports["dicom"]), str(image)
    )
    assert stored.returncode == 0, stored.stdout + stored.stderr

    vm.ssh(f"mkfs.ext4 -q -L {USB_LABEL} /dev/disk/by-id/virtio-BACKUP0")
    passphrase = "/etc/appliance/backup/passphrase"
    vm.ssh(f"install -d -m 0700 /etc/appliance/backup && head -c 32 /dev/urandom | base64 > {passphrase}")
    vm.ssh(f"chmod 0600 {passphrase} && sed -i 's/^    labels: \\[\\]$/    labels: [\"{USB_LABEL}\"]/' {CONFIG}")
    assert USB_LABEL in vm.ssh(f"grep -A6 '^backup:' {CONFIG}").stdout
    vm.ssh(f"{APPLIANCE} backup configure", timeout=120)
    vm.ssh(f"{APPLIANCE} backup init --target usb", timeout=300)
    started = time.monotonic()
    run = vm.ssh(f"{APPLIANCE} backup run --target usb", timeout=900, check=False)
    print(f"backup to the USB disk in the VM: {time.monotonic() - started:.1f} s\n{run.stdout}{run.stderr}")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "/media/appliance-backup" not in vm.ssh("findmnt -rno TARGET", check=False).stdout  # unmounted after

    restored = vm.ssh(
        f"{APPLIANCE} backup restore studies --target usb --study {uids['study']}", timeout=600, check=False
    )
    assert restored.returncode == 0, restored.stdout + restored.stderr
    print(restored.stdout)
    index = vm.ssh(
        f"{APPLIANCE} backup restore index --target usb --to /var/tmp/restored-index", timeout=600, check=False
    )
    assert index.returncode == 0, index.stdout + index.stderr
    verify = vm.ssh(f"runuser -u appliance -- {APPLIANCE} archive verify", timeout=300, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
