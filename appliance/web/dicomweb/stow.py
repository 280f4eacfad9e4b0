"""STOW-RS (PS3.18 10.5): a multipart/related body of DICOM files into the archive's one ingest
(`archive.ingest`, the same as C-STORE: durability, duplicates, statuses), and the DICOM JSON reply.

The body is spooled first (in memory when small, else to a file in the archive's incoming folder,
on the same disk as the archive), then checked whole: a malformed body stores nothing. Each part is
then stored on its own; the reply lists what was stored (Referenced SOP Sequence, with each
object's Retrieve URL) and what was refused with its reason (Failed SOP Sequence, the C-STORE
failure statuses of PS3.4 B.2.3).

No CSRF token is needed for this POST: a browser page of another site can neither send a
multipart/related body without a CORS preflight (which this server never grants) nor send the
console's cookie (SameSite=Lax) with it.
"""

from __future__ import annotations

import contextlib
import mmap
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from appliance.archive.ingest import Ingest, StoreOutcome, StoreResult
from appliance.archive.storage import FileStore
from appliance.web.dicomweb import multipart
from appliance.web.dicomweb.accept import DICOM
from appliance.web.dicomweb.multipart import MalformedMultipart, Part, Searchable

MAXIMUM_BYTES = 4 * 1024**3  # one request; larger sets go in several
IN_MEMORY_BYTES = 32 * 1024 * 1024
SENDER = "STOW-RS"  # what the index keeps as the sending AE title

# PS3.4 B.2.3 C-STORE statuses, used as Failure Reason (0008,1197) as PS3.18 10.5.3.1 says.
OUT_OF_RESOURCES = 0xA700
DATA_SET_DOES_NOT_MATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
FAILURE_REASON = {
    StoreOutcome.REFUSED_NO_SPACE: OUT_OF_RESOURCES,
    StoreOutcome.FAILED: OUT_OF_RESOURCES,
    StoreOutcome.REFUSED_INVALID: CANNOT_UNDERSTAND,
    StoreOutcome.REFUSED_MISMATCH: DATA_SET_DOES_NOT_MATCH,
}
OK = 200
SOME_FAILED = 202  # PS3.18 10.5.3: some instances stored, some not
NONE_STORED = 409


@contextlib.contextmanager
def spooled(stream: IO[bytes], directory: Path) -> Iterator[Searchable]:
    """The whole request body, searchable: bytes when small, an mmap of a temporary file else."""
    head = read_up_to(stream, IN_MEMORY_BYTES)
    if len(head) < IN_MEMORY_BYTES:
        yield head
        return
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=directory, prefix="stow-") as spool:
        spool.write(head)
        shutil.copyfileobj(stream, spool, 1024 * 1024)
        spool.flush()
        with mmap.mmap(spool.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            yield mapped


def read_up_to(stream: IO[bytes], size: int) -> bytes:
    """`size` bytes, or fewer at the end of the stream (a request stream may return short reads)."""
    chunks, wanted = [], size
    while wanted > 0:
        chunk = stream.read(min(wanted, 1024 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        wanted -= len(chunk)
    return b"".join(chunks)


def store_body(
    stream: IO[bytes], boundary: bytes, ingest: Ingest, files: FileStore, study: str
) -> list[tuple[StoreResult, Part]]:
    """Check the whole body, then store each part; MalformedMultipart (nothing stored) when the
    body or a part's type is wrong."""
    with spooled(stream, files.incoming_directory) as body:
        parts = multipart.read_parts(body, boundary, DICOM)
        for number, part in enumerate(parts, start=1):
            if part.media_type.media_type != DICOM:
                raise MalformedMultipart(f"part {number} is {part.media_type.media_type}, not {DICOM}")
        return [(ingest.store_object(body[part.start : part.end], SENDER, study), part) for part in parts]


def reply(results: list[tuple[StoreResult, Part]], base_url: str, study: str) -> tuple[int, dict[str, Any]]:
    """The HTTP status and the DICOM JSON reply (PS3.18 10.5.3.1) for the parts' results."""
    referenced, failed = [], []
    studies = set()
    for result, _ in results:
        attributes = result.attributes
        item: dict[str, Any] = {}
        if attributes is not None:
            item["00081150"] = {"vr": "UI", "Value": [attributes.sop_class_uid]}
            item["00081155"] = {"vr": "UI", "Value": [attributes.sop_instance_uid]}
        if result.outcome in FAILURE_REASON:
            item["00081197"] = {"vr": "US", "Value": [FAILURE_REASON[result.outcome]]}
            failed.append(item)
            continue
        assert attributes is not None  # stored objects were read
        studies.add(attributes.study_instance_uid)
        url = (
            f"{base_url}/studies/{attributes.study_instance_uid}/series/{attributes.series_instance_uid}"
            f"/instances/{attributes.sop_instance_uid}"
        )
        item["00081190"] = {"vr": "UR", "Value": [url]}
        referenced.append(item)
    answer: dict[str, Any] = {}
    if study or len(studies) == 1:
        answer["00081190"] = {"vr": "UR", "Value": [f"{base_url}/studies/{study or studies.pop()}"]}
    if failed:
        answer["00081198"] = {"vr": "SQ", "Value": failed}
    if referenced:
        answer["00081199"] = {"vr": "SQ", "Value": referenced}
    status = OK if not failed else SOME_FAILED if referenced else NONE_STORED
    return status, answer
