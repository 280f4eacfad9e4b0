"""moto's standalone S3 server on 127.0.0.1 and a free port, as the deferred tier's object store in
tests and benchmarks (no MinIO or Ceph gateway is installable here; moto speaks the S3 protocol)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from servers import free_port, wait_for_port

ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key"


@contextlib.contextmanager
def s3_server(log_path: Path) -> Iterator[str]:
    """A running moto S3 server; yields its endpoint URL, stopped (by its own PID) afterwards."""
    executable = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    port = free_port()
    with open(log_path, "ab") as log:
        process = subprocess.Popen([executable, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    try:
        wait_for_port(port, "moto_server", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def credentials_file(path: Path) -> Path:
    path.write_text(f"{ACCESS_KEY}\n{SECRET_KEY}\n")
    path.chmod(0o600)
    return path


def make_bucket(endpoint_url: str, bucket: str) -> Any:
    """Create `bucket` on the server; the boto3 client used."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    client.create_bucket(Bucket=bucket)
    return client
