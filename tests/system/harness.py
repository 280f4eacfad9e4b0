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


def dcmtk(tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path("/usr/bin") / tool), *args], capture_output=True, text=True, timeout=timeout)


def make_ct_image(path: Path) -> dict[str, str]:
    """A small, valid CT image (64x64, 16-bit) with fresh UIDs."""
    import numpy as np
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID = CTImageStorage
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID = generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.PatientID = "SYSTEST01"
    dataset.PatientName = "Test^Boot"
    dataset.StudyDate = "20260101"
    dataset.StudyTime = "120000"
    dataset.AccessionNumber = "ACC0001"
    dataset.StudyID = "1"
    dataset.SeriesNumber = 1
    dataset.InstanceNumber = 1
    dataset.Modality = "CT"
    dataset.Rows = dataset.Columns = 64
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = 16
    dataset.BitsStored = 12
    dataset.HighBit = 11
    dataset.PixelRepresentation = 0
    dataset.RescaleIntercept = -1024
    dataset.RescaleSlope = 1
    dataset.ImagePositionPatient = [0, 0, 0]
    dataset.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    dataset.PixelSpacing = [1, 1]
    dataset.SliceThickness = 1
    dataset.PixelData = (np.arange(64 * 64, dtype=np.uint16) % 4096).tobytes()
    dataset.save_as(path, enforce_file_format=True)
    return {"study": dataset.StudyInstanceUID, "instance": dataset.SOPInstanceUID}
