"""Bad input at first boot: only ONE data disk. The box must come up, create the data mirror
degraded, say so in the journal and as an event, and run the archive anyway."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from harness import TEST_KEY, VM_WORK
from vm import ApplianceVM

pytestmark = [pytest.mark.vm, pytest.mark.timeout(1800)]


def test_first_boot_with_one_data_disk_runs_degraded_and_says_so(test_image: Path) -> None:
    workdir = VM_WORK / "one-data-disk"
    shutil.rmtree(workdir, ignore_errors=True)
    vm = ApplianceVM(image=test_image, workdir=workdir, ssh_key=TEST_KEY, data_disks=1)
    vm.start()
    try:
        vm.wait_ssh(timeout=420)
        state = vm.ssh("systemctl is-system-running --wait", timeout=400, check=False).stdout.strip()
        failed = vm.ssh("systemctl --failed --no-legend --plain", check=False).stdout
        assert state == "running", f"state {state!r} with one data disk; failed units:\n{failed}"

        journal = vm.ssh("journalctl -b -u appliance-storage-setup.service --no-pager").stdout
        assert "creating the data mirror DEGRADED" in journal, journal
        warning = vm.ssh("journalctl -b -p warning -u appliance-storage-setup.service --no-pager").stdout
        assert "DEGRADED" in warning, "the degraded state is not logged as a warning"

        records = [
            json.loads(line)
            for line in vm.ssh("cat /var/lib/appliance/events/events.jsonl").stdout.splitlines()
            if line
        ]
        degraded = [r for r in records if r["event"] == "data-degraded"]
        assert degraded and degraded[0]["severity"] == "critical", records

        assert vm.ssh("findmnt -no SOURCE /srv/appliance").stdout.strip().startswith("/dev/md")
        detail = vm.ssh("mdadm --detail /dev/md/data").stdout
        assert "degraded" in detail, detail
        assert vm.ssh("systemctl is-active appliance-dicom", check=False).stdout.strip() == "active"
    finally:
        vm.stop()
