"""Static checks of the playbook and of the built test tree (nothing boots here)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from harness import REPO, run

pytestmark = pytest.mark.static

ANSIBLE_ENV = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible" / "ansible.cfg")}


def chroot(tree: Path, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a command inside the tree (no daemons, no mounts: read-only style checks)."""
    return run(["chroot", str(tree), *command], timeout=timeout, check=False)


def test_playbook_syntax(ansible_playbook: Path) -> None:
    for inventory in ("production", "test"):
        run(
            [
                str(ansible_playbook),
                "--syntax-check",
                "-i",
                str(REPO / "ansible/inventories" / inventory),
                str(REPO / "ansible/site.yml"),
            ],
            env=ANSIBLE_ENV,
        )


def test_missing_required_variable_stops_the_play_naming_it(ansible_playbook: Path, tmp_path: Path) -> None:
    """A production inventory without mail_admin_address: the first play fails and names it."""
    inventory = tmp_path / "inventory"
    shutil.copytree(REPO / "ansible/inventories/production", inventory)
    variables = inventory / "group_vars/appliance/main.yml"
    lines = [line for line in variables.read_text().splitlines() if not line.startswith("mail_admin_address:")]
    variables.write_text("\n".join(lines) + "\n")
    result = run(
        [
            str(ansible_playbook),
            "-i",
            str(inventory),
            str(REPO / "ansible/site.yml"),
            "-e",
            f"image_tree={tmp_path / 'no-such-tree'}",
        ],
        env=ANSIBLE_ENV,
        check=False,
    )
    assert result.returncode != 0
    assert "Required variable 'mail_admin_address' is not set" in result.stdout + result.stderr
    assert not (tmp_path / "no-such-tree").exists()


def test_every_task_uses_fqcn_and_commands_say_when_they_change() -> None:
    """STYLE.md rule 14, checked mechanically on every task file of every role."""
    import yaml

    problems = []
    for task_file in sorted((REPO / "ansible/roles").glob("*/*/*.yml")):
        if task_file.parent.name not in ("tasks", "handlers"):
            continue
        for task in yaml.safe_load(task_file.read_text()) or []:
            modules = [key for key in task if "." in key]
            if not modules:
                problems.append(f"{task_file}: task {task.get('name')!r} has no FQCN module")
                continue
            if modules[0].split(".")[-1] in ("command", "shell") and "changed_when" not in task:
                problems.append(f"{task_file}: {task.get('name')!r} lacks changed_when")
            if not task.get("name"):
                problems.append(f"{task_file}: a task has no name")
    assert not problems, "\n".join(problems)


def test_every_template_is_headed_by_ansible_managed() -> None:
    missing = [
        str(path)
        for path in (REPO / "ansible/roles").glob("*/templates/**/*.j2")
        if "{{ ansible_managed }}" not in "\n".join(path.read_text().splitlines()[:3])
    ]
    assert not missing, f"templates without {{{{ ansible_managed }}}} in their first lines: {missing}"


def test_every_role_documents_its_variables() -> None:
    for role in (REPO / "ansible/roles").iterdir():
        defaults = role / "defaults/main.yml"
        assert defaults.exists(), f"{role.name} has no defaults/main.yml"
        text = defaults.read_text()
        assert text.count("#") >= 2, f"{defaults} documents nothing"
        import yaml

        for name in yaml.safe_load(text) or {}:
            assert name.startswith(role.name + "_"), f"{defaults}: {name} is not prefixed {role.name}_"


def test_units_verify_inside_the_tree(test_tree: Path) -> None:
    """systemd-analyze verify (the image's own systemd, run in the tree) on every unit we install."""
    units = sorted(path.name for path in (test_tree / "etc/systemd/system").glob("appliance-*.service"))
    assert "appliance-storage-setup.service" in units
    assert {"appliance-dicom.service", "appliance-worker.service", "appliance-worklist.service"} <= set(units)
    assert {"appliance-hl7.service", "appliance-prepare.service"} <= set(units)
    assert {"appliance-web.service", "appliance-tls.service"} <= set(units)
    assert {"appliance-monitor.service", "appliance-smartctl@.service"} <= set(units)
    assert "appliance-forward.service" not in units
    for unit in units:
        result = chroot(test_tree, "systemd-analyze", "verify", f"/etc/systemd/system/{unit}")
        output = (result.stdout + result.stderr).strip()
        assert result.returncode == 0 and not output, f"{unit}:\n{output}"


def test_repository_units_verify(test_tree: Path) -> None:
    """The files in systemd/ themselves (what the role copies), against the built tree."""
    for unit in sorted((REPO / "systemd").glob("*.service")):
        installed = test_tree / "etc/systemd/system" / unit.name
        if not installed.exists():
            continue  # the package does not have this daemon yet
        assert installed.read_bytes() == unit.read_bytes(), f"{unit.name} in the tree differs from systemd/"


# Units that never touch the data mirror: the TLS files are in /etc/appliance/tls, and nginx must
# get them even on a box whose data disks are missing.
OUTSIDE_THE_DATA = {"appliance-tls.service", "appliance-smartctl@.service", "appliance-tunnel-key.service"}


def test_archive_units_are_hardened_and_ordered() -> None:
    for unit in (REPO / "systemd").glob("appliance-*.service"):
        text = unit.read_text()
        settings = ["ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectHome=yes"]
        if unit.name not in OUTSIDE_THE_DATA:
            settings += ["ReadWritePaths=/srv/appliance", "RequiresMountsFor=/srv/appliance"]
        for setting in settings:
            assert setting in text, f"{unit.name} lacks {setting}"
        if "Type=oneshot" not in text:
            for setting in ("Type=notify", "Restart=on-failure", "WatchdogSec="):
                assert setting in text, f"{unit.name} lacks {setting}"
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE" in (REPO / "systemd/appliance-dicom.service").read_text()


def test_sshd_configuration_is_valid(test_tree: Path, tmp_path: Path) -> None:
    key = test_tree / "tmp/test-host-key"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    privilege_separation = test_tree / "run/sshd"
    privilege_separation.mkdir(exist_ok=True)
    try:
        result = chroot(test_tree, "/usr/sbin/sshd", "-t", "-f", "/etc/ssh/sshd_config", "-h", "/tmp/test-host-key")
        assert result.returncode == 0, result.stderr
        effective = chroot(
            test_tree,
            "/usr/sbin/sshd",
            "-T",
            "-f",
            "/etc/ssh/sshd_config",
            "-h",
            "/tmp/test-host-key",
            "-C",
            "user=root,host=x,addr=10.0.2.2",
        ).stdout
        assert "passwordauthentication no" in effective
        assert "permitrootlogin without-password" in effective or "permitrootlogin prohibit-password" in effective
    finally:
        key.unlink(missing_ok=True)
        key.with_suffix(".pub").unlink(missing_ok=True)
        privilege_separation.rmdir()


def test_no_build_time_secrets_or_identity_left(test_tree: Path) -> None:
    assert not list((test_tree / "etc/ssh").glob("ssh_host_*")), "build-time ssh host keys left in the image"
    assert (test_tree / "etc/machine-id").read_text() == ""
    assert not (test_tree / "usr/sbin/policy-rc.d").exists()
    assert not (test_tree / "var/cache/appliance-build-pip").exists()
    assert (test_tree / "etc/resolv.conf").is_symlink()


def test_archive_configuration(test_tree: Path) -> None:
    import yaml

    config_file = test_tree / "etc/appliance/appliance.yaml"
    stat = config_file.stat()
    assert oct(stat.st_mode & 0o777) == "0o640"
    config = yaml.safe_load(config_file.read_text())
    assert config["dicom"]["port"] == 104
    assert config["storage"]["data_directory"] == "/srv/appliance"
    assert {peer["ae_title"] for peer in config["peers"]} >= {"ECHOSCU", "STORESCU", "GETSCU"}
    result = chroot(test_tree, "/opt/appliance/venv/bin/appliance", "config", "check", "/etc/appliance/appliance.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_venv_has_the_package_on_the_image_python(test_tree: Path) -> None:
    result = chroot(
        test_tree,
        "/opt/appliance/venv/bin/python",
        "-c",
        "import sys, pydicom, pynetdicom, numpy; print(sys.version_info[:2])",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(3, 13)"


def test_event_recorder_writes_json_lines(test_tree: Path) -> None:
    events = test_tree / "var/lib/appliance/events/events.jsonl"
    before = events.read_text().splitlines() if events.exists() else []
    result = chroot(test_tree, "/usr/local/lib/appliance/mdadm-event", "DegradedArray", "/dev/md/data")
    assert result.returncode == 0, result.stderr
    try:
        record = json.loads(events.read_text().splitlines()[-1])
        assert record["source"] == "mdadm"
        assert record["event"] == "DegradedArray"
        assert record["severity"] == "critical"
        assert record["device"] == "/dev/md/data"
    finally:
        events.write_text("".join(line + "\n" for line in before))
        if not before:
            events.unlink()


def test_firewall_rules_parse(test_tree: Path) -> None:
    nft = shutil.which("nft")
    rules = (test_tree / "etc/nftables.conf").read_text()
    assert "policy drop" in rules
    assert "ip saddr { 10.0.2.0/24 } tcp dport 104 accept" in rules
    if nft is None:
        pytest.skip("nft is not installed on the build machine")
    result = run([nft, "-c", "-f", str(test_tree / "etc/nftables.conf")], check=False)
    if "Operation not supported" in result.stderr or (
        "Could not process rule" in result.stderr and "No such file" in result.stderr
    ):
        pytest.skip(f"this kernel cannot check nftables rules: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr


def test_vagrantfile_validates() -> None:
    vagrant = shutil.which("vagrant")
    if vagrant is None:
        pytest.skip("vagrant is not installed (apt-get install vagrant; not part of image-deps: ~240 packages)")
    env = {**os.environ, "VAGRANT_DOTFILE_PATH": str(REPO / "build" / "vagrant" / "dotfile")}
    result = run([vagrant, "validate", "--ignore-provider"], cwd=REPO, env=env, check=False)
    assert result.returncode == 0 and "validated successfully" in result.stdout, result.stdout + result.stderr
