"""The systemd units of the daemons share one hardening block, word for word, and each can be
reloaded (SIGHUP) and notifies systemd when it is ready."""

from __future__ import annotations

from pathlib import Path

import pytest

UNITS = Path(__file__).parents[2] / "systemd"
DAEMONS = [
    "appliance-dicom.service",
    "appliance-worker.service",
    "appliance-worklist.service",
    "appliance-hl7.service",
    "appliance-web.service",
    "appliance-monitor.service",
    "appliance-tunnel.service",
]
ONESHOTS = [
    "appliance-prepare.service",
    "appliance-tls.service",
    "appliance-smartctl@.service",
    "appliance-tunnel-key.service",
    "appliance-backup.service",
    "appliance-drill.service",
    "appliance-qc.service",
]
START = "# --- hardening: identical in every daemon unit (tests/unit/test_units.py) ---"
END = "# --- end of hardening ---"


def hardening(unit: str) -> str:
    text = (UNITS / unit).read_text()
    assert text.count(START) == 1 and text.count(END) == 1, f"{unit}: one hardening block between the markers"
    return text[text.index(START) : text.index(END)]


def test_every_daemon_unit_has_the_same_hardening_block() -> None:
    blocks = {unit: hardening(unit) for unit in DAEMONS}
    reference = blocks[DAEMONS[0]]
    assert "ProtectSystem=strict" in reference and "NoNewPrivileges=yes" in reference
    assert {unit for unit, block in blocks.items() if block != reference} == set()


@pytest.mark.parametrize("unit", DAEMONS)
def test_daemon_units_notify_and_reload(unit: str) -> None:
    text = (UNITS / unit).read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text
    assert "ExecReload=/bin/kill -HUP $MAINPID" in text


def test_every_unit_in_the_folder_is_a_known_daemon_or_oneshot() -> None:
    assert sorted(path.name for path in UNITS.glob("*.service")) == sorted([*DAEMONS, *ONESHOTS])


def test_the_console_s_keys_are_made_before_nginx_and_checked_daily() -> None:
    service = (UNITS / "appliance-tls.service").read_text()
    assert "Type=oneshot" in service and "Before=nginx.service" in service
    assert "appliance tls ensure --config /etc/appliance/appliance.yaml" in service
    assert "OnCalendar=daily" in (UNITS / "appliance-tls.timer").read_text()


def test_the_monitor_loosens_only_proc_subset_after_the_shared_block() -> None:
    """It reads /proc/mdstat (hidden by ProcSubset=pid); nothing else differs from the other daemons."""
    text = (UNITS / "appliance-monitor.service").read_text()
    after = text[text.index(END) + len(END) :]
    settings = [line for line in after.splitlines() if line and not line.startswith(("#", "["))]
    assert settings == ["ProcSubset=all", "WantedBy=multi-user.target"]


def test_the_smartctl_helper_is_socket_activated_for_the_appliance_group_only() -> None:
    socket = (UNITS / "appliance-smartctl.socket").read_text()
    assert "Accept=yes" in socket and "SocketGroup=appliance" in socket and "SocketMode=0660" in socket
    service = (UNITS / "appliance-smartctl@.service").read_text()
    assert "StandardInput=socket" in service and "NoNewPrivileges=yes" in service and "PrivateNetwork=yes" in service


def test_the_backup_runs_nightly_and_the_drill_monthly_confined() -> None:
    for name, command in (("appliance-backup", "appliance backup run"), ("appliance-drill", "appliance backup drill")):
        service = (UNITS / f"{name}.service").read_text()
        assert f"{command} --config /etc/appliance/appliance.yaml" in service and "Type=oneshot" in service
        assert "ProtectSystem=strict" in service and "NoNewPrivileges=yes" in service
        assert "ReadWritePaths=/srv/appliance /etc/appliance/backup" in service
        timer = (UNITS / f"{name}.timer").read_text()
        assert "Persistent=true" in timer and "RandomizedDelaySec=5min" in timer
    assert "OnCalendar=*-*-* 02:30:00" in (UNITS / "appliance-backup.timer").read_text()


def test_the_tunnel_runs_as_its_own_account_reading_the_appliance_group() -> None:
    """Only the tunnel's account may read the box's key; the console never runs autossh itself."""
    text = (UNITS / "appliance-tunnel.service").read_text()
    assert "User=appliance-tunnel" in text and "SupplementaryGroups=appliance" in text
    assert "appliance.daemons.tunnel --config /etc/appliance/appliance.yaml" in text
    key = (UNITS / "appliance-tunnel-key.service").read_text()
    assert "ConditionPathExists=!/etc/appliance/tunnel/id_ed25519" in key and "-t ed25519" in key


def test_the_quality_control_report_runs_daily_as_the_appliance_user_confined() -> None:
    service = (UNITS / "appliance-qc.service").read_text()
    assert "appliance qc run --config /etc/appliance/appliance.yaml" in service and "Type=oneshot" in service
    assert "User=appliance" in service and "CapabilityBoundingSet=\n" in service
    assert "ProtectSystem=strict" in service and "NoNewPrivileges=yes" in service
    timer = (UNITS / "appliance-qc.timer").read_text()
    assert "Persistent=true" in timer and "OnCalendar=*-*-* 06:30:00" in timer


def test_back_up_now_is_a_request_file_a_path_unit_turns_into_the_backup() -> None:
    """The console has no power of root: it writes a file, systemd starts the confined backup."""
    path = (UNITS / "appliance-backup-now.path").read_text()
    assert "PathExists=/srv/appliance/run/backup-now" in path and "Unit=appliance-backup.service" in path
    assert "ExecStartPre=/bin/rm -f /srv/appliance/run/backup-now" in (UNITS / "appliance-backup.service").read_text()
