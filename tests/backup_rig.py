"""What the backup tests share: a box's configuration with its backup targets, images received
through the real ingest, and a throwaway sshd on loopback playing the off-site server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from datagen import PATIENTS, encoded, make_instance
from pydicom.uid import generate_uid
from servers import free_port, write_config

from appliance.archive.index import Index
from appliance.archive.ingest import IncomingObject, Ingest, StoreOutcome
from appliance.archive.storage import FileStore
from appliance.config import Config, load_config
from appliance.db import create_index_engine, upgrade_schema

VENV_BIN = str(Path(sys.executable).parent)
PASSPHRASE = "correct horse battery staple du cabinet"


def with_tools_on_path(monkeypatch: pytest.MonkeyPatch | None = None) -> None:
    """borgmatic and the test's sshd call `borg` by name: the one beside this Python first. Tests
    pass their `monkeypatch`, so PATH is put back afterwards (the venv also holds pynetdicom's
    `findscu`/`storescu`, which must not shadow DCMTK's in the tests that follow); the benchmark,
    a process of its own, passes none."""
    if os.environ.get("PATH", "").startswith(VENV_BIN):
        return
    path = f"{VENV_BIN}:{os.environ.get('PATH', '')}"
    if monkeypatch is None:
        os.environ["PATH"] = path
    else:
        monkeypatch.setenv("PATH", path)


def box(root: Path, backup: dict[str, Any]) -> Path:
    """A production configuration under `root` (etc/, data/), its passphrase file; returns the
    configuration file's path. `backup` is merged over the test defaults."""
    etc = root / "etc"
    (etc / "backup").mkdir(parents=True, exist_ok=True)
    passphrase = etc / "backup" / "passphrase"
    passphrase.write_text(PASSPHRASE + "\n")
    passphrase.chmod(0o600)
    section = {
        "passphrase_file": str(passphrase),
        "ssh_key_file": "",
        "known_hosts_file": "",
        "borgmatic_file": str(etc / "backup" / "borgmatic.yaml"),
        "usb": {"mountpoint": str(root / "media" / "appliance-backup")},
        **backup,
    }
    document = {
        "mode": "production",
        "site_name": "Cabinet de test",
        "storage": {"data_directory": str(root / "data"), "minimum_free_space_mb": 1},
        "dicom": {"ae_title": "APPLIANCE", "bind_address": "127.0.0.1", "port": 0},
        "backup": section,
    }
    path = write_config(etc / "appliance.yaml", document)
    config = load_config(path)
    engine = create_index_engine(config.database_url)
    upgrade_schema(engine, config.storage.index_directory)
    engine.dispose()
    return path


def ingest_of(config: Config) -> Ingest:
    engine = create_index_engine(config.database_url)
    return Ingest(FileStore(config.storage.data_directory, 0), Index(engine))


def receive_study(ingest: Ingest, images: int, patient_number: int = 0, modality: str = "CT", seed: int = 0) -> str:
    """One study of `images` instances through the real ingest; its Study Instance UID."""
    patient = PATIENTS[patient_number % len(PATIENTS)]
    study_uid, series_uid = generate_uid(), generate_uid()
    for number in range(1, images + 1):
        dataset = make_instance(modality, patient, study_uid, series_uid, number, seed=seed * 10000 + number)
        result = ingest.store(IncomingObject(encoded(dataset), str(dataset.SOPInstanceUID),
                                             str(dataset.SOPClassUID), "TESTSCU"))  # fmt: skip
        assert result.outcome is StoreOutcome.STORED, result
    return study_uid


@contextmanager
def append_only_server(root: Path) -> Iterator[tuple[str, Path, Path]]:
    """A throwaway sshd on 127.0.0.1 (free port) whose only key is forced to `borg serve
    --append-only --restrict-to-repository <root>/remote/repo`. Yields the repository URL, the
    client's private key and its known_hosts file (the server's host key, scanned)."""
    root.mkdir(parents=True, exist_ok=True)
    repository = root / "remote" / "repo"
    repository.parent.mkdir(parents=True)
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True)
    forced = f"{VENV_BIN}/borg serve --append-only --restrict-to-repository {repository}"
    public = (root / "client_key.pub").read_text().strip()
    (root / "authorized_keys").write_text(f'restrict,command="{forced}" {public}\n')
    port = free_port()
    (root / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {root / 'host_key'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nPidFile {root / 'sshd.pid'}\n"
        "UsePAM no\nStrictModes no\nPasswordAuthentication no\nPermitRootLogin prohibit-password\n"
        f"SetEnv PATH={VENV_BIN}:/usr/bin:/bin\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    log = open(root / "sshd.log", "w")  # noqa: SIM115 (open while the server runs)
    server = subprocess.Popen([shutil.which("sshd") or "/usr/sbin/sshd", "-D", "-e", "-f", str(root / "sshd_config")],
                              stderr=log)  # fmt: skip
    try:
        known_hosts = root / "known_hosts"
        wait_for_host_key(port, known_hosts)
        user = os.environ.get("USER") or "root"
        yield f"ssh://{user}@127.0.0.1:{port}{repository}", root / "client_key", known_hosts
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def wait_for_host_key(port: int, known_hosts: Path) -> None:
    """ssh-keyscan until the server answers (bounded); its key written as the box's known host."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        scanned = subprocess.run(["ssh-keyscan", "-p", str(port), "-t", "ed25519", "127.0.0.1"],
                                 capture_output=True, text=True, timeout=10)  # fmt: skip
        if scanned.stdout.strip():
            known_hosts.write_text(scanned.stdout)
            return
        time.sleep(0.1)
    raise AssertionError("the throwaway sshd did not answer")
