"""The borgmatic configuration, generated from the appliance's, and running borgmatic.

What is backed up, in this order (borgmatic dumps its database hooks before borg walks the files,
and `appliance backup run` takes the SQLite snapshot before calling borgmatic):
1. the staging folder (`<state>/staging`: the index and the audit trail copied by SQLite's online
   backup API, the console settings, the manifest), or, for a PostgreSQL index, borgmatic's
   `postgresql_databases` hook (`pg_dump` streamed to borg through a pipe, no staging space);
2. the image store (`archive/`) and the quarantined duplicates (`quarantine/`);
3. the configuration folder (`/etc/appliance`: the main file, the TLS certificates, the ssh key of
   the off-site repository), the passphrase file excepted (it opens the backup; it is kept in the
   escrow envelope instead).

Data paths go in as `<data_directory>/./archive` (borg 1.4's "slashdot"): they are stored relative
(`archive/...`, `staging/...`), so a restore can put them under any data directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import make_url

from appliance.backup import BackupError
from appliance.backup.snapshot import staging_directory
from appliance.backup.targets import Target, targets_of
from appliance.config import Config

ARCHIVE_NAME_FORMAT = "appliance-{now:%Y-%m-%dT%H:%M:%S}"
CHECK_FREQUENCY = "2 weeks"  # nightly runs check at most this often; the drill forces its own
LOCK_WAIT_SECONDS = 300
TAIL_LINES = 15  # of borg's stderr kept with a failure


def source_directories(config: Config) -> list[str]:
    data = config.storage.data_directory
    state = config.backup.state_directory
    sources = [f"{staging_directory(config).parent}/./staging", f"{data}/./archive", f"{data}/./quarantine"]
    configuration = Path(config.source).parent if Path(config.source).is_absolute() else None
    if configuration is None or data.is_relative_to(configuration) or state.is_relative_to(configuration):
        return sources  # no file (`make run`), or a folder holding the data: not walked twice
    return [*sources, str(configuration)]


def borgmatic_document(config: Config) -> dict[str, Any]:
    """The borgmatic 2.x configuration (a dict ready for YAML) of every configured target."""
    backup = config.backup
    state = backup.state_directory
    document: dict[str, Any] = {
        "source_directories": source_directories(config),
        "source_directories_must_exist": True,
        "repositories": [{"path": target.repository, "label": target.name} for target in targets_of(backup)],
        "exclude_patterns": [str(backup.passphrase_file), "*.partial"],
        "one_file_system": True,
        "encryption_passcommand": f"cat {backup.passphrase_file}",
        "compression": backup.compression,
        "archive_name_format": ARCHIVE_NAME_FORMAT,
        "lock_wait": LOCK_WAIT_SECONDS,
        "borg_base_directory": str(state / "borg"),
        "user_runtime_directory": str(state / "run"),
        "user_state_directory": str(state / "borgmatic"),
        "keep_daily": backup.keep_daily,
        "keep_weekly": backup.keep_weekly,
        "keep_monthly": backup.keep_monthly,
        "keep_yearly": backup.keep_yearly,
        "checks": [
            {"name": "repository", "frequency": CHECK_FREQUENCY},
            {"name": "archives", "frequency": CHECK_FREQUENCY},
        ],
    }
    borg_beside = Path(sys.executable).parent / "borg"
    if borg_beside.exists():  # development (`make run`): the venv's borg; the box has Debian's on PATH
        document["local_path"] = str(borg_beside)
    if any(target.repository.startswith("ssh://") for target in targets_of(backup)):
        document["ssh_command"] = ssh_command(config)
    postgresql = postgresql_database(config)
    if postgresql:
        document["postgresql_databases"] = [postgresql]
    return document


def ssh_command(config: Config) -> str:
    """ssh to the off-site repository: the box's own key, the server's known key, no prompt."""
    parts = ["ssh", "-o", "BatchMode=yes", "-o", "ServerAliveInterval=30"]
    if config.backup.ssh_key_file is not None:
        parts += ["-i", str(config.backup.ssh_key_file), "-o", "IdentitiesOnly=yes"]
    if config.backup.known_hosts_file is not None:
        parts += ["-o", f"UserKnownHostsFile={config.backup.known_hosts_file}"]
    return " ".join([*parts, "-o", "StrictHostKeyChecking=accept-new"])


def postgresql_database(config: Config) -> dict[str, Any] | None:
    """borgmatic's `postgresql_databases` entry for a PostgreSQL index (pg_dump, custom format)."""
    url = make_url(config.database_url)
    if not url.get_backend_name().startswith("postgresql"):
        return None
    database: dict[str, Any] = {"name": url.database or "appliance", "format": "custom"}
    for key, value in (("hostname", url.host), ("port", url.port), ("username", url.username)):
        if value:
            database[key] = value
    if url.password:
        database["password"] = url.password
    return database


def borgmatic_yaml(config: Config) -> str:
    header = (
        "# Generated by `appliance backup configure` from the appliance's configuration: do not edit,\n"
        "# change /etc/appliance/appliance.yaml and generate again. Run by `appliance backup run`,\n"
        "# which stages the SQLite snapshot first (appliance/backup/README.md).\n"
    )
    return header + yaml.safe_dump(borgmatic_document(config), sort_keys=False, allow_unicode=True)


def write_borgmatic_file(config: Config, path: Path | None = None) -> Path:
    """Write the generated configuration (0600: it names the passphrase file and the keys)."""
    destination = path or config.backup.borgmatic_file
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    partial.write_text(borgmatic_yaml(config), encoding="utf-8")
    os.chmod(partial, 0o600)
    os.replace(partial, destination)
    return destination


def borgmatic_executable() -> str:
    """borgmatic beside this Python (the appliance's virtual environment), else on PATH."""
    beside = Path(sys.executable).parent / "borgmatic"
    return str(beside) if beside.exists() else shutil.which("borgmatic") or "borgmatic"


def run_borgmatic(
    config: Config, arguments: Sequence[str], reason: str, target: Target | None = None, timeout: float | None = None
) -> str:
    """Run `borgmatic -c <generated file> ARGUMENTS [--repository <target>]` and return its stdout;
    BackupError(`reason`, the command and the end of its stderr) when it fails. The file is
    generated again first, so it always follows the appliance's configuration."""
    path = write_borgmatic_file(config)
    command = [borgmatic_executable(), "-c", str(path), "--no-color", *arguments]
    if target is not None:
        command += ["--repository", target.name]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BackupError(reason, f"{' '.join(arguments)}: {error}") from error
    if done.returncode != 0:
        raise BackupError(reason, f"borgmatic {' '.join(arguments)}: {tail(done.stderr)}")
    return done.stdout


def tail(text: str) -> str:
    return "\n".join(text.strip().splitlines()[-TAIL_LINES:])


def json_of(output: str) -> Any:
    """borgmatic's --json output (a list, one item per repository); BackupError when unreadable."""
    try:
        return json.loads(output)
    except json.JSONDecodeError as error:
        raise BackupError("borgmatic a répondu quelque chose d'illisible.", output[-500:]) from error
