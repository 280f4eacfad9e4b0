"""Study and series metadata made ready to send, kept until what it shows changes.

Building the DICOM JSON of a 600-image series (`metadata.metadata`: one query, 600 documents joined,
then gzip) costs about 15 ms of CPU, more than the whole 50 ms budget on a busy 2-core box once
HTTP is added. So the gzip bytes are kept in memory, in each console worker, with their version:
the few numbers of `metadata.version`, read by one aggregate query (under a millisecond) on every
request. The cached answer is served while that version is unchanged; an instance added, deleted,
compressed, moved to the deferred tier, or a new identity for the patient (an ADT update, an A40
merge, a reconciliation) changes the version, and the next request builds the answer anew. What it
was built for is part of the key too: the scope and the base URL of its BulkDataURIs.

The version is read *before* the answer is built: a change committed in between leaves an answer
newer than its version, rebuilt at the next request, never an older answer under a newer version.

Memory is bounded (`MAXIMUM_BYTES` per worker, least recently used first out): the gzip bytes
(about 40 KiB for 600 CT images), plus the plain bytes (about 1.2 MiB) only once a client refused
gzip. Nothing is written to disk: a restart costs one build per series, about 15 ms.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Engine

from appliance.archive import metadata
from appliance.archive.metadata import Scope

MAXIMUM_BYTES = 32 * 1024 * 1024  # per worker: about 800 series of 600 images, gzip only
GZIP_LEVEL = 1  # 1.2 MiB of DICOM JSON in about 2 ms, 30 times smaller; higher levels gain little


@dataclass(frozen=True)
class Prepared:
    """One scope's metadata ready to send: gzip bytes, plain bytes, and an entity tag naming its
    content (the same content gets the same tag after a restart)."""

    compressed: bytes
    plain: bytes
    entity_tag: str


@dataclass
class Entry:
    """What the cache keeps for one scope: the version it was built at, the gzip bytes and their
    entity tag, and the plain bytes once asked for."""

    version: tuple[Any, ...]
    compressed: bytes
    entity_tag: str
    plain: bytes | None = None

    @property
    def size(self) -> int:
        return len(self.compressed) + len(self.plain or b"")


class MetadataCache:
    """The metadata answers of one worker process, shared by its request threads."""

    def __init__(self, engine: Engine, maximum_bytes: int = MAXIMUM_BYTES) -> None:
        self.engine = engine
        self.maximum_bytes = maximum_bytes
        self.entries: OrderedDict[tuple[Scope, str], Entry] = OrderedDict()
        self.size = 0
        self.lock = threading.Lock()
        self.builds = 0  # how many answers were built (tests and benchmarks read it)

    def compressed(self, scope: Scope, base_url: str) -> Prepared | None:
        """The gzip answer for `scope` (its `plain` left empty), None when nothing matches."""
        return self.answer(scope, base_url, plain=False)

    def uncompressed(self, scope: Scope, base_url: str) -> Prepared | None:
        """The plain answer for `scope` (its `compressed` bytes too), None when nothing matches."""
        return self.answer(scope, base_url, plain=True)

    def answer(self, scope: Scope, base_url: str, plain: bool) -> Prepared | None:
        with self.engine.connect() as connection:
            version = metadata.version(connection, scope)
        if version is None:
            return None
        key = (scope, base_url)
        entry = self.current(key, version)
        if entry is None:
            text = metadata.metadata(self.engine, scope, base_url)
            if text is None:  # deleted since the version was read
                return None
            entry = self.keep(key, built(version, text.encode(), plain), new=True)
        elif plain and entry.plain is None:
            entry = self.keep(key, replace(entry, plain=gzip.decompress(entry.compressed)))
        return Prepared(entry.compressed, (entry.plain or b"") if plain else b"", entry.entity_tag)

    def current(self, key: tuple[Scope, str], version: tuple[Any, ...]) -> Entry | None:
        """The entry kept for `key` if it was built at `version` (then the most recently used)."""
        with self.lock:
            entry = self.entries.get(key)
            if entry is None or entry.version != version:
                return None
            self.entries.move_to_end(key)
            return entry

    def keep(self, key: tuple[Scope, str], entry: Entry, new: bool = False) -> Entry:
        """Keep `entry` for `key` (replacing an older one), the least recently used out beyond the
        bound; an answer larger than the whole bound is served but not kept."""
        with self.lock:
            self.builds += 1 if new else 0
            replaced = self.entries.pop(key, None)
            self.size -= replaced.size if replaced is not None else 0
            if entry.size > self.maximum_bytes:
                return entry
            self.entries[key] = entry
            self.size += entry.size
            while self.size > self.maximum_bytes:
                _, evicted = self.entries.popitem(last=False)
                self.size -= evicted.size
        return entry

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.size = 0


def prepared(text: str, compressed: bool) -> Prepared:
    """An answer made for one request and not kept (one instance's metadata: small and cheap)."""
    plain = text.encode()
    entry = built((), plain, keep_plain=True)
    return Prepared(entry.compressed if compressed else b"", plain, entry.entity_tag)


def built(version: tuple[Any, ...], plain: bytes, keep_plain: bool) -> Entry:
    """A new entry: the plain bytes compressed (kept too when a client asked for them), tagged by a
    digest of the compressed bytes (30 times fewer to hash; the same content compresses to the same
    bytes, no time stamp in the gzip header)."""
    compressed = gzip.compress(plain, compresslevel=GZIP_LEVEL, mtime=0)
    tag = hashlib.blake2b(compressed, digest_size=16).hexdigest()
    return Entry(version, compressed, tag, plain if keep_plain else None)
