"""Verified lossless compression of archived images (A2), in the background, never on ingest.

For each newly stored uncompressed image: encode (JPEG-LS lossless by default, or JPEG 2000
lossless), decode the result again, compare every pixel with the original, and only then write the
compressed file next to the original, point the index at it, and delete the original. A crash at
any point leaves the index pointing at a complete, verified file. Lossy is never produced.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import takewhile
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
)
from sqlalchemy import Engine, func, select

from appliance.archive import changes
from appliance.archive.changes import Change, Feed
from appliance.archive.index import STORED_INSTANCE_COLUMNS, Index, StoredInstance
from appliance.archive.metadata import document_of_file
from appliance.archive.progress import ProgressCallback, quietly
from appliance.archive.storage import FileStore, sha256_of_file
from appliance.db.schema import instance

LOGGER = logging.getLogger(__name__)

CONSUMER = "lossless-compressor"
LOCK_FILE = "lossless.lock"
UNCOMPRESSED = {ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian}
SYNTAXES = {"jpeg-ls": JPEGLSLossless, "jpeg-2000": JPEG2000Lossless}
ENCODERS: dict[str, str] = {JPEGLSLossless: "pyjpegls", JPEG2000Lossless: "pylibjpeg"}


# Pixel Data, and Planar Configuration (0028,0006), which the encoders set for colour images.
ENCODING_ELEMENTS = {0x7FE00010, 0x00280006}


class VerificationFailed(Exception):
    """The decoded compressed pixels differ from the original: the original is kept."""


class NotCompressible(Exception):
    """The object has no pixels, is already compressed, or has pixels the codec cannot take."""


@dataclass(frozen=True)
class Compressed:
    encoded: bytes
    transfer_syntax_uid: str


def compress_verified(encoded: bytes, transfer_syntax_uid: str) -> Compressed:
    """Compress an uncompressed DICOM file losslessly and prove it by decoding.

    Raises NotCompressible or VerificationFailed; runs in a worker process (pure function).
    """
    dataset = dcmread(io.BytesIO(encoded))
    check_compressible(dataset, transfer_syntax_uid)
    original_pixels = dataset.pixel_array.copy()
    original_header = header_elements(dataset)
    try:
        # The same instance in another encoding: pydicom would otherwise mint a new SOP Instance UID.
        dataset.compress(
            transfer_syntax_uid, encoding_plugin=ENCODERS[transfer_syntax_uid], generate_instance_uid=False
        )
    except (ValueError, RuntimeError, NotImplementedError) as error:
        raise NotCompressible(f"the encoder refused the pixels: {error}") from error
    output = io.BytesIO()
    dataset.save_as(output, enforce_file_format=True)
    result = output.getvalue()
    verify_same_instance(result, original_header, original_pixels)
    return Compressed(result, transfer_syntax_uid)


def verify_same_instance(encoded: bytes, original_header: dict[int, object], original_pixels: np.ndarray) -> None:
    """Decode the compressed file: same pixels, same header apart from what encoding changes."""
    compressed = dcmread(io.BytesIO(encoded))
    if not np.array_equal(decoded_pixels(compressed), original_pixels):
        raise VerificationFailed("decoded pixels differ from the original")
    changed = [f"{tag:08X}" for tag, value in header_elements(compressed).items() if original_header.get(tag) != value]
    missing = [f"{tag:08X}" for tag in original_header.keys() - header_elements(compressed).keys()]
    if changed or missing:
        raise VerificationFailed(f"header elements differ after compression: {sorted(changed + missing)}")


def header_elements(dataset: Dataset) -> dict[int, object]:
    """Every element but the pixel data and those an encoding legitimately rewrites."""
    return {int(element.tag): element.value for element in dataset if int(element.tag) not in ENCODING_ELEMENTS}


def decoded_pixels(dataset: Dataset) -> np.ndarray:
    """The pixels of a dataset, decoded from its own transfer syntax."""
    return dataset.pixel_array


def check_compressible(dataset: Dataset, transfer_syntax_uid: str) -> None:
    if "PixelData" not in dataset:
        raise NotCompressible("no pixel data")
    if dataset.file_meta.TransferSyntaxUID not in UNCOMPRESSED:
        raise NotCompressible("already compressed")
    bits_allocated = int(dataset.get("BitsAllocated", 0))
    if bits_allocated not in (8, 16):
        raise NotCompressible(f"{bits_allocated} bits allocated")
    if transfer_syntax_uid == JPEGLSLossless and str(dataset.get("PhotometricInterpretation", "")).startswith("YBR"):
        raise NotCompressible("YBR colour is kept as received")


@dataclass(frozen=True)
class CompressionReport:
    compressed: int = 0
    skipped: int = 0
    failed: int = 0
    bytes_saved: int = 0


@contextlib.contextmanager
def compression_lock(files: FileStore, wait: bool) -> Iterator[bool]:
    """Hold the archive's compression lock (a lock file in the data folder); yield whether it is held."""
    with open(files.data_directory / LOCK_FILE, "w") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


class LosslessCompressor:
    """Follows the change feed and compresses what arrived at least `delay` ago."""

    def __init__(self, index: Index, files: FileStore, transfer_syntax_uid: str, delay: timedelta) -> None:
        self.index = index
        self.files = files
        self.transfer_syntax_uid = transfer_syntax_uid
        self.delay = delay
        self.feed = Feed(index.engine, CONSUMER, {changes.INSTANCE_STORED})

    def run_once(self, executor: Executor | None, batch: int = 64) -> CompressionReport:
        """Compress the next batch of due instances; advance the feed cursor past them.

        Whoever compresses holds the compression lock (the background worker for one batch, the
        `archive compress` command for its whole run): a second compressor waits its turn.
        """
        with compression_lock(self.files, wait=False) as held:
            if not held:
                return CompressionReport()  # another compressor holds the lock: nothing done
            return self.run_batch(executor, batch)

    def run_batch(self, executor: Executor | None, batch: int = 64) -> CompressionReport:
        """`run_once` for a caller that already holds the compression lock."""
        due = list(takewhile(self.due, self.feed.pending(batch)))
        if not due:
            return CompressionReport()
        outcomes = self.compress_all(due, executor)
        self.feed.advance(due[-1].id)
        return summarise(outcomes)

    def due(self, change: Change) -> bool:
        return datetime.now(UTC) - change.created_at_utc >= self.delay

    def compress_all(self, changes: list[Change], executor: Executor | None) -> list[tuple[str, int]]:
        candidates = self.candidates(changes)
        skipped = [("skipped", 0)] * (len(changes) - len(candidates))
        return skipped + self.compress_instances(candidates, executor)

    def compress_instances(self, candidates: list[StoredInstance], executor: Executor | None) -> list[tuple[str, int]]:
        """Compress these uncompressed instances (in `executor`'s processes, or here); an outcome each."""
        work = [(stored, data) for stored in candidates if (data := self.read(stored)) is not None]
        if executor is None:
            results = [self.attempt(partial(compress_verified, data, self.transfer_syntax_uid)) for _, data in work]
        else:
            futures = [executor.submit(compress_verified, data, self.transfer_syntax_uid) for _, data in work]
            results = [self.attempt(future.result) for future in futures]
        skipped = [("skipped", 0)] * (len(candidates) - len(work))
        installed = [self.install(stored, data, result) for (stored, data), result in zip(work, results, strict=True)]
        return skipped + installed

    def read(self, stored: StoredInstance) -> bytes | None:
        try:
            return self.files.absolute(stored.path).read_bytes()
        except FileNotFoundError:  # replaced meanwhile (compressed by another run): nothing to do
            return None

    def candidates(self, changes: list[Change]) -> list[StoredInstance]:
        found = [self.index.stored_instance(change.sop_instance_uid) for change in changes]
        return [stored for stored in found if stored is not None and stored.transfer_syntax_uid in UNCOMPRESSED]

    def attempt(self, work: Callable[[], Compressed]) -> Compressed | Exception:
        try:
            return work()
        except (NotCompressible, VerificationFailed) as error:
            return error
        except Exception as error:  # a codec crash in one image must not stop the worker
            LOGGER.exception("lossless compression failed")
            return error

    def install(self, stored: StoredInstance, original: bytes, result: Compressed | Exception) -> tuple[str, int]:
        if isinstance(result, VerificationFailed):
            LOGGER.error("instance %s: %s; original kept", stored.sop_instance_uid, result)
            return ("failed", 0)
        if isinstance(result, Exception):
            LOGGER.info("instance %s not compressed: %s", stored.sop_instance_uid, result)
            return ("skipped", 0)
        if len(result.encoded) >= len(original):
            return ("skipped", 0)
        return self.replace(stored, result)

    def replace(self, stored: StoredInstance, result: Compressed) -> tuple[str, int]:
        """Write the compressed file beside the original, repoint the index, delete the original."""
        original = self.files.absolute(stored.path)
        if not original.exists():
            return ("skipped", 0)
        if sha256_of_file(original) != stored.sha256:
            LOGGER.error("instance %s: file changed since it was indexed; not compressed", stored.sop_instance_uid)
            return ("failed", 0)
        written = self.files.write_durably(result.encoded, compressed_path(stored.path))
        document = document_of_file(result.encoded)
        if not self.index.replace_file(stored.id, stored.sha256, result.transfer_syntax_uid, written, document):
            if written.created:
                self.files.absolute(written.relative_path).unlink(missing_ok=True)
            return ("skipped", 0)
        self.files.absolute(stored.path).unlink(missing_ok=True)
        return ("compressed", stored.size_bytes - written.size_bytes)


COMPRESSING = "compressing images"


def compress_everything(
    compressor: LosslessCompressor, executor: Executor | None, progress: ProgressCallback = quietly, batch: int = 16
) -> CompressionReport:
    """Compress every instance still stored uncompressed, whatever the change feed and the delay
    say, `batch` at a time; `progress` after each batch. The caller holds the compression lock.

    Each instance is tried once per run (one the codec cannot take is counted as skipped); the
    feed's cursor is left alone: the background compressor later finds those instances done.
    """
    engine = compressor.index.engine
    total = count_uncompressed(engine)
    report, done, last_id = CompressionReport(), 0, 0
    progress(COMPRESSING, 0, total)
    while found := uncompressed_instances(engine, last_id, batch):
        report = add_reports(report, summarise(compressor.compress_instances(found, executor)))
        done, last_id = done + len(found), found[-1].id
        progress(COMPRESSING, done, max(total, done))
    return report


def count_uncompressed(engine: Engine) -> int:
    uncompressed = instance.c.transfer_syntax_uid.in_(sorted(UNCOMPRESSED))
    statement = select(func.count()).select_from(instance).where(uncompressed)
    with engine.connect() as connection:
        return int(connection.scalar(statement) or 0)


def uncompressed_instances(engine: Engine, after_id: int, limit: int) -> list[StoredInstance]:
    """The next `limit` instances stored uncompressed, in id order, after `after_id`."""
    statement = (
        select(*STORED_INSTANCE_COLUMNS)
        .where(instance.c.id > after_id, instance.c.transfer_syntax_uid.in_(sorted(UNCOMPRESSED)))
        .order_by(instance.c.id)
        .limit(limit)
    )
    with engine.connect() as connection:
        return [StoredInstance(**row._mapping) for row in connection.execute(statement)]


def add_reports(first: CompressionReport, second: CompressionReport) -> CompressionReport:
    return CompressionReport(
        compressed=first.compressed + second.compressed,
        skipped=first.skipped + second.skipped,
        failed=first.failed + second.failed,
        bytes_saved=first.bytes_saved + second.bytes_saved,
    )


def compressed_path(path: str) -> str:
    stem = Path(path)
    return str(stem.with_name(stem.name.removesuffix(".dcm") + ".lossless.dcm"))


def summarise(outcomes: list[tuple[str, int]]) -> CompressionReport:
    return CompressionReport(
        compressed=sum(1 for kind, _ in outcomes if kind == "compressed"),
        skipped=sum(1 for kind, _ in outcomes if kind == "skipped"),
        failed=sum(1 for kind, _ in outcomes if kind == "failed"),
        bytes_saved=sum(saved for _, saved in outcomes),
    )
