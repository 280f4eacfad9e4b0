"""Orthanc (the Debian package) as a real remote PACS for tests and benchmarks: started by the test
on 127.0.0.1 on free ports with its own temporary configuration (storage and index in a temporary
folder, no plugins, no remote access, no authentication on loopback), never the system service;
stopped by its PID. Nagle's algorithm is off on its sockets as on ours: `TcpNoDelay` for its HTTP
server, and the environment variable TCP_NODELAY=1, which the DCMTK inside it reads for DICOM.
Its REST API (HTTP port) tells what it holds.

    with Orthanc(work / "orthanc", modalities={"APPLIANCE": ("APPLIANCE", archive_port)}) as orthanc:
        orthanc.instances()            # the SOP Instance UIDs it stores
        orthanc.file(sop_instance_uid)  # the DICOM file as it stored it
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from servers import free_port, listening, wait_for

EXECUTABLE = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
AE_TITLE = "ORTHANC"


def available() -> bool:
    return Path(EXECUTABLE).is_file()


needs_orthanc = pytest.mark.skipif(not available(), reason="Orthanc is not installed (apt-get install orthanc)")


class Orthanc:
    """One Orthanc process; `modalities` are the AEs it knows (title -> (AE title, port) on
    127.0.0.1): the ones it answers C-FIND / C-MOVE for and moves to. `refused` lists Orthanc's
    `<Name>TransferSyntaxAccepted` switches to turn off (e.g. "JpegLossless"); `settings` adds
    to or replaces its configuration (e.g. a plugin and its section)."""

    def __init__(
        self,
        directory: Path,
        modalities: dict[str, tuple[str, int]] | None = None,
        refused: tuple[str, ...] = (),
        ae_title: str = AE_TITLE,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.directory = directory
        self.modalities = dict(modalities or {})
        self.refused = refused
        self.ae_title = ae_title
        self.settings = dict(settings or {})
        self.dicom_port = free_port()
        self.http_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def configuration(self) -> dict[str, Any]:
        storage = self.directory / "storage"
        settings: dict[str, Any] = {
            "Name": "Orthanc de test",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "Plugins": [],
            "HttpServerEnabled": True,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomServerEnabled": True,
            "DicomAet": self.ae_title,
            "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": False,
            "DicomCheckModalityHost": False,
            "DicomModalities": {name: [title, "127.0.0.1", port] for name, (title, port) in self.modalities.items()},
            "DicomAlwaysAllowStore": True,
            "DicomAssociationCloseDelay": 0,
            "DefaultEncoding": "Utf8",
            "StableAge": 1,
            "SaveJobs": False,
            "ConcurrentJobs": 1,
            "HttpThreadsCount": 4,
            "TcpNoDelay": True,
        }
        for name in self.refused:
            settings[f"{name}TransferSyntaxAccepted"] = False
        return {**settings, **self.settings}

    def start(self) -> Orthanc:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / "orthanc.json"
        path.write_text(json.dumps(self.configuration(), indent=2))
        with open(self.directory / "orthanc.log", "ab") as log:
            environment = {**os.environ, "TCP_NODELAY": "1"}
            self.process = subprocess.Popen([EXECUTABLE, str(path)], stdout=log, stderr=log, env=environment)
        wait_for(self.ready, f"Orthanc on ports {self.dicom_port} and {self.http_port}")
        return self

    def ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"Orthanc exited: {(self.directory / 'orthanc.log').read_text()[-3000:]}")
        return listening(self.dicom_port) and listening(self.http_port) and self.answers()

    def answers(self) -> bool:
        try:
            self.get("/system")
        except (OSError, urllib.error.URLError):
            return False
        return True

    def stop(self) -> None:
        """SIGTERM to our own process (by PID), then wait; kill only if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Orthanc:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=body, method=method)
        with urllib.request.urlopen(request, timeout=60) as answer:
            content: bytes = answer.read()
        return content

    def get(self, path: str) -> Any:
        return json.loads(self.request("GET", path))

    def upload(self, file: Path) -> Any:
        """Store a file through the REST API (as if it had come from elsewhere)."""
        return json.loads(self.request("POST", "/instances", file.read_bytes()))

    def instance_ids(self) -> list[str]:
        found: list[str] = self.get("/instances")
        return found

    def instances(self) -> dict[str, str]:
        """SOP Instance UID -> Orthanc's instance id, for every instance it holds."""
        answer: list[dict[str, Any]] = json.loads(
            self.request("POST", "/tools/find", json.dumps({"Level": "Instance", "Query": {}, "Expand": True}).encode())
        )
        return {item["MainDicomTags"]["SOPInstanceUID"]: item["ID"] for item in answer}

    def file(self, orthanc_id: str) -> bytes:
        return self.request("GET", f"/instances/{orthanc_id}/file")

    def statistics(self) -> dict[str, Any]:
        found: dict[str, Any] = self.get("/statistics")
        return found
