"""The test image booted in qemu (TCG, UEFI) with two system disks and two data disks.

One boot serves the tests in file order: the box comes up with no failed unit, completes both
mirrors, answers DICOM through a forwarded port, reports a failed and rebuilt RAID member and an
injected SMART failure, then powers itself off on a simulated UPS low battery; a second boot
of the same disks checks that the archive is intact and that the shutdown was ordered.
"""

from __future__ import annotations

import http.client
import json
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from harness import dcmtk, make_ct_image, wait_until
from vm import ApplianceVM

# Boots under TCG take minutes: a generous per-test limit (pyproject sets 300 s by default).
pytestmark = [pytest.mark.vm, pytest.mark.timeout(1800)]

STORED: dict[str, Any] = {}


def events(vm: ApplianceVM) -> list[dict[str, Any]]:
    text = vm.ssh("cat /var/lib/appliance/events/events.jsonl 2>/dev/null || true").stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def array_state(vm: ApplianceVM, array: str) -> dict[str, str]:
    """mdadm --detail --export of the array, plus its sysfs state, degraded count and sync action."""
    sysfs = f"/sys/block/$(basename $(readlink -f {array}))/md"
    out = vm.ssh(
        f"mdadm --detail --export {array} 2>/dev/null; echo STATE=$(cat {sysfs}/array_state 2>/dev/null); "
        f"echo DEGRADED=$(cat {sysfs}/degraded 2>/dev/null); echo SYNC=$(cat {sysfs}/sync_action 2>/dev/null)",
        check=False,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def mirror_complete(vm: ApplianceVM, array: str) -> bool:
    state = array_state(vm, array)
    return state.get("DEGRADED") == "0" and state.get("SYNC") == "idle" and state.get("MD_DEVICES") == "2"


def retrieve(vm: ApplianceVM, study: str, into: Path) -> list[Path]:
    into.mkdir(parents=True, exist_ok=True)
    result = dcmtk(
        "getscu",
        "-aet",
        "GETSCU",
        "-aec",
        "APPLIANCE",
        "-S",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={study}",
        "-od",
        str(into),
        "127.0.0.1",
        str(vm.host_ports["dicom"]),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return sorted(into.iterdir())


# --- first boot -----------------------------------------------------------------------------
def test_boots_with_no_failed_unit(booted_vm: ApplianceVM) -> None:
    state = booted_vm.ssh("systemctl is-system-running --wait", timeout=400, check=False).stdout.strip()
    failed = booted_vm.ssh("systemctl --failed --no-legend --plain", check=False).stdout
    print(f"ssh answered {booted_vm.boot_seconds:.0f} s after qemu started; state {state}")  # type: ignore[attr-defined]
    assert state == "running", f"system state {state!r}; failed units:\n{failed}"


def test_system_mirror_is_completed_onto_the_second_disk(booted_vm: ApplianceVM) -> None:
    wait_until(lambda: mirror_complete(booted_vm, "/dev/md/root"), 400, "the system mirror to be in sync")
    layout = booted_vm.ssh("lsblk -no NAME,PARTLABEL,FSTYPE /dev/vda /dev/vdb").stdout
    assert layout.count("linux_raid_member") == 2, layout
    assert layout.count("vfat") == 2, f"the EFI system partition is not on both disks:\n{layout}"
    assert booted_vm.ssh("findmnt -no SOURCE /").stdout.strip().startswith("/dev/md")


def test_data_mirror_is_created_and_mounted(booted_vm: ApplianceVM) -> None:
    wait_until(lambda: mirror_complete(booted_vm, "/dev/md/data"), 300, "the data mirror to be in sync")
    source = booted_vm.ssh("findmnt -no SOURCE /srv/appliance").stdout.strip()
    assert source.startswith("/dev/md"), source
    created = [e for e in events(booted_vm) if e["source"] == "storage" and e["event"] == "NewArray"]
    assert created, "no NewArray event recorded by the storage setup"


# --- DICOM ----------------------------------------------------------------------------------
def test_dicom_echo_store_find_get(booted_vm: ApplianceVM, tmp_path: Path) -> None:
    port = str(booted_vm.host_ports["dicom"])
    assert booted_vm.ssh("systemctl is-active appliance-dicom", check=False).stdout.strip() == "active"
    echo = dcmtk("echoscu", "-aet", "ECHOSCU", "-aec", "APPLIANCE", "127.0.0.1", port)
    assert echo.returncode == 0, echo.stdout + echo.stderr

    image = tmp_path / "ct.dcm"
    uids = make_ct_image(image)
    store = dcmtk("storescu", "-aet", "STORESCU", "-aec", "APPLIANCE", "127.0.0.1", port, str(image))
    assert store.returncode == 0, store.stdout + store.stderr

    find = dcmtk(
        "findscu",
        "-aet",
        "FINDSCU",
        "-aec",
        "APPLIANCE",
        "-S",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={uids['study']}",
        "-k",
        "PatientID",
        "127.0.0.1",
        port,
    )
    assert find.returncode == 0, find.stdout + find.stderr
    assert "SYSTEST01" in find.stdout + find.stderr

    files = retrieve(booted_vm, uids["study"], tmp_path / "retrieved")
    assert len(files) == 1, files
    import pydicom

    original, copy = pydicom.dcmread(image), pydicom.dcmread(files[0])
    assert copy.SOPInstanceUID == uids["instance"]
    assert copy.pixel_array.tobytes() == original.pixel_array.tobytes()
    STORED.update(uids, pixels=original.pixel_array.tobytes())


# --- console --------------------------------------------------------------------------------
def https_get(vm: ApplianceVM, path: str, ca_file: Path) -> tuple[int, str, bytes]:
    """GET over the forwarded 443, verifying the box's certificate against its CA (strictly); the
    certificate names 127.0.0.1 too, so the forwarded address verifies. Redirects are not followed."""
    context = ssl.create_default_context(cafile=str(ca_file))
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    connection = http.client.HTTPSConnection("127.0.0.1", vm.host_ports["https"], context=context, timeout=60)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return answer.status, answer.getheader("Location") or "", answer.read()
    finally:
        connection.close()


def test_console_answers_over_https_with_the_box_s_own_certificate(booted_vm: ApplianceVM, tmp_path: Path) -> None:
    for unit in ("appliance-web", "nginx"):
        state = booted_vm.ssh(f"systemctl is-active {unit}", check=False).stdout.strip()
        assert state == "active", (
            f"{unit} is {state}:\n"
            + booted_vm.ssh(f"journalctl -b -u {unit} --no-pager | tail -30", check=False).stdout
        )
    made = booted_vm.ssh("systemctl show -p Result -p ExecMainStatus appliance-tls.service").stdout
    assert "Result=success" in made and "ExecMainStatus=0" in made, made

    plain = http.client.HTTPConnection("127.0.0.1", booted_vm.host_ports["http"], timeout=60)
    plain.request("GET", "/ca.crt")
    answer = plain.getresponse()
    ca_bytes = answer.read()
    plain.close()
    assert answer.status == 200, ca_bytes[:500]
    assert ca_bytes.decode() == booted_vm.ssh("cat /etc/appliance/tls/ca.crt").stdout
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca_bytes)

    status, location, body = https_get(booted_vm, "/", ca_file)
    # A new box has no account: the first visit creates the administrator, then leads to /setup.
    assert 300 <= status < 400 and urlsplit(location).path == "/first-visit", (status, location)
    status, location, body = https_get(booted_vm, "/first-visit", ca_file)
    assert status == 200, (status, location, body[:500])
    assert b"Bienvenue" in body, body[:500]


def test_the_box_s_screen_shows_the_console_and_the_ca_fingerprint(booted_vm: ApplianceVM) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    ca = x509.load_pem_x509_certificate(booted_vm.ssh("cat /etc/appliance/tls/ca.crt").stdout.encode())
    octets = ca.fingerprint(hashes.SHA256()).hex(":").upper().split(":")
    screen = booted_vm.ssh("cat /etc/issue.d/appliance.issue").stdout
    assert "https://\\4/" in screen, screen
    assert ":".join(octets[:16]) in screen and ":".join(octets[16:]) in screen, screen
    key_modes = booted_vm.ssh("stat -c '%a %U' /etc/appliance/tls/ca.key /etc/appliance/tls/server.key").stdout
    assert key_modes.split("\n")[:2] == ["600 root", "600 root"], key_modes


# --- RAID, SMART ----------------------------------------------------------------------------
def test_failed_member_is_reported_then_rebuilt(booted_vm: ApplianceVM) -> None:
    state = array_state(booted_vm, "/dev/md/data")
    members = [
        key[len("MD_DEVICE_") : -len("_DEV")] for key in state if key.startswith("MD_DEVICE_") and key.endswith("_DEV")
    ]
    member = state[f"MD_DEVICE_{members[-1]}_DEV"]
    booted_vm.ssh(f"mdadm --manage /dev/md/data --fail {member}")
    wait_until(
        lambda: [e for e in events(booted_vm) if e["source"] == "mdadm" and e["event"] == "Fail"],
        90,
        "mdadm --monitor's Fail event",
    )
    assert "_" in booted_vm.ssh("grep -A1 '^md' /proc/mdstat").stdout, "/proc/mdstat does not show the hole"
    assert array_state(booted_vm, "/dev/md/data")["DEGRADED"] == "1"

    booted_vm.ssh(
        f"mdadm --manage /dev/md/data --remove {member} && mdadm --zero-superblock {member} "
        f"&& mdadm --manage /dev/md/data --add {member}"
    )
    wait_until(lambda: mirror_complete(booted_vm, "/dev/md/data"), 300, "the rebuild to finish")
    wait_until(
        lambda: [e for e in events(booted_vm) if e["source"] == "mdadm" and e["event"] == "RebuildFinished"],
        90,
        "mdadm --monitor's RebuildFinished event",
    )


def test_smart_critical_warning_is_recorded(booted_vm: ApplianceVM) -> None:
    answer = booted_vm.monitor("qom-set /machine/peripheral/data0 smart_critical_warning 4")
    assert "rror" not in answer, answer
    found = wait_until(
        lambda: [e for e in events(booted_vm) if e["source"] == "smartd"],
        180,
        "smartd's event for the injected critical warning",
        interval=5,
    )
    assert any("nvme" in e["device"] for e in found), found


# --- UPS: ordered power-off, then the archive is intact ---------------------------------------
def test_ups_low_battery_powers_the_box_off(booted_vm: ApplianceVM) -> None:
    device = "/run/nut/ups-simulated.dev"
    wait_until(
        lambda: booted_vm.ssh("upsc ups@localhost ups.status 2>/dev/null", check=False).stdout.strip() == "OL",
        60,
        "the simulated UPS on line",
    )
    booted_vm.ssh(f"sed -i 's/^ups.status: .*/ups.status: OB DISCHRG/' {device}")
    wait_until(
        lambda: [e for e in events(booted_vm) if e["source"] == "nut" and e["event"] == "onbatt"],
        60,
        "the on-battery event",
    )
    assert booted_vm.running()
    booted_vm.ssh(f"sed -i 's/^ups.status: .*/ups.status: OB DISCHRG LB/' {device}", check=False)
    assert booted_vm.wait_exit(240), "the VM did not power itself off after low battery"


def test_after_restart_the_archive_is_intact_and_the_shutdown_was_ordered(
    booted_vm: ApplianceVM, tmp_path: Path
) -> None:
    booted_vm.start()
    try:
        booted_vm.wait_ssh(timeout=420)
        state = booted_vm.ssh("systemctl is-system-running --wait", timeout=400, check=False).stdout.strip()
        failed = booted_vm.ssh("systemctl --failed --no-legend --plain", check=False).stdout
        assert state == "running", f"after the UPS shutdown the box came up {state!r}:\n{failed}"
        assert booted_vm.ssh("upsc ups@localhost ups.status", check=False).stdout.strip() == "OL", (
            "the simulated UPS did not come back on line (it would shut the box down again)"
        )
        assert mirror_complete(booted_vm, "/dev/md/root") or array_state(booted_vm, "/dev/md/root")["SYNC"] != "idle"
        journal = booted_vm.ssh(
            "journalctl -b -1 -o short-monotonic --no-pager "
            "-u appliance-dicom.service -u srv-appliance.mount -u nut-monitor.service",
            check=False,
        ).stdout
        assert "Unmounted srv-appliance.mount" in journal, journal[-3000:]
        stopped = [i for i, line in enumerate(journal.splitlines()) if "Stopped appliance-dicom.service" in line]
        unmounted = [i for i, line in enumerate(journal.splitlines()) if "Unmounted srv-appliance.mount" in line]
        assert stopped and stopped[0] < unmounted[0], journal[-3000:]
        assert STORED, "test_dicom_echo_store_find_get stores the image checked here: run the whole module"
        files = retrieve(booted_vm, STORED["study"], tmp_path / "after-restart")
        import pydicom

        assert pydicom.dcmread(files[0]).pixel_array.tobytes() == STORED["pixels"]
    finally:
        booted_vm.stop()
