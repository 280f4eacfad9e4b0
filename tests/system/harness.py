"""Paths and small helpers shared by the system tests (the fixtures live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "image") not in sys.path:
    sys.path.insert(0, str(REPO / "image"))  # image/vm.py: stdlib only, also used by `make vm-run`

IMAGE_DIR = REPO / os.environ.get("IMAGE_DIR", "build/image")
IMAGE_TEST_DIR = REPO / os.environ.get("IMAGE_TEST_DIR", "build/image-test")
TEST_KEY = IMAGE_TEST_DIR / "ssh" / "id_ed25519"
VM_WORK = REPO / "build" / "vm-test"
ANSIBLE_VENV = REPO / "build" / "ansible-venv"

T = TypeVar("T")


def run(
    command: list[str], timeout: float = 120, check: bool = True, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run a host command in text mode with a timeout; raise with its output when check fails."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload]
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, command))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def wait_until(check: Callable[[], T], timeout: float, what: str, interval: float = 3) -> T:
    """Poll check() until it returns something truthy and return it; fail naming what was awaited."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")
