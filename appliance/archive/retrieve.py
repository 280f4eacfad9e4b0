"""What leaves the archive: which objects a retrieve sends and in which order (`plan`), and for each
one, what to send for the transfer syntaxes the receiver accepted (`payload`).

One rule for every way out (C-GET, C-MOVE, forwarding, WADO-RS and the viewer), wherever the
bytes are (`source`: the main storage, or the deferred tier of `archive.tiers`):
1. The stored bytes, unchanged, when the receiver accepted their transfer syntax and the identity in
   their header is still the current one.
2. Otherwise a dataset: decoded when the receiver did not accept the stored syntax (sent in an
   uncompressed syntax, or re-encoded in a *lossless* syntax the receiver asked for), and coerced to
   the current identity when an ADT update, a merge, an identifier change or a reconciliation changed
   it since the file arrived (P2). The values it replaces are kept in the Original Attributes
   Sequence (PS3.3 C.12.1). The file itself is never rewritten.
3. Nothing is ever made lossy: an object the receiver can take in no syntax the archive can produce
   is refused with the reason (`CannotSend`).

The identity check is made once per study, on the header kept in the index for its first instance:
all instances of a study share their patient.
"""

from __future__ import annotations

import enum
import functools
import io
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from sqlalchemy import Connection, Engine, Select, and_, bindparam, func, select
from sqlalchemy.exc import SQLAlchemyError

from appliance.archive.search import KEYS, LEVELS, Query, QueryError, joined_tables, match
from appliance.archive.storage import IMMEDIATE, FileStore
from appliance.db.schema import instance, instance_header, patient, series, study

# Syntaxes any stored object can be sent in: uncompressed (after decoding when compressed) ...
UNCOMPRESSED_OUT = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian)
# ... and lossless syntaxes the archive can encode (decoded first when stored otherwise).
LOSSLESS_ENCODERS: dict[str, str] = {JPEGLSLossless: "pyjpegls", JPEG2000Lossless: "pylibjpeg", RLELossless: ""}
# Decoders to prefer: with pylibjpeg-libjpeg installed too, pydicom would pick it for JPEG-LS, about
# four times slower than CharLS (pyjpegls) on a 512 x 512 CT image.
PREFERRED_DECODERS: dict[str, str] = {JPEGLSLossless: "pyjpegls", JPEGLSNearLossless: "pyjpegls"}
PRODUCIBLE = frozenset({*UNCOMPRESSED_OUT, *LOSSLESS_ENCODERS})
UNIQUE_KEYS = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
IDENTITY = {
    "PatientID": patient.c.patient_id,
    "IssuerOfPatientID": patient.c.issuer_of_patient_id,
    "PatientName": patient.c.patient_name,
    "PatientBirthDate": patient.c.patient_birth_date,
    "PatientSex": patient.c.patient_sex,
}
MODIFYING_SYSTEM = "PACS appliance"
NO_STUDY = "2.25.0"  # a Study Instance UID no object has (the UUID-derived UID of the nil UUID)
HELD_SAMPLE = 1000  # the newest instances whose stored syntaxes stand for what the archive holds
HELD_REFRESH_SECONDS = 2.0  # how often they are read again while C-GETs come
HELD_QUIET_SECONDS = 60.0  # after this long without a C-GET, they are no longer read in the background
STORED_IDENTITIES_KEPT = 256  # studies retrieved lately whose stored header's identity is kept

LOGGER = logging.getLogger(__name__)


class CannotSend(Exception):
    """None of the accepted transfer syntaxes can carry this object without loss; says why."""


class Delivery(enum.Enum):
    AS_STORED = "as stored"
    COERCED = "coerced"  # stored encoding, current identity written in
    DECODED = "decoded"  # decompressed (and coerced when needed)
    TRANSCODED = "transcoded"  # re-encoded in another lossless syntax (and coerced when needed)


class RetrieveItem(NamedTuple):
    """One archived object a retrieve sends (a named tuple: a plan makes one per row, hundreds
    before the first image goes out)."""

    path: str
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    study_instance_uid: str
    tier: str = IMMEDIATE  # where the bytes are (R1): the main storage or the deferred tier
    location: str = ""
    sha256: str = ""


def source(files: FileStore, item: RetrieveItem) -> Path:
    """Where to read `item`'s bytes: under `archive/`, or from the deferred tier (slower: fetched
    first, and checked against the index's SHA-256, from an object store).

    Raises OSError when the deferred tier cannot be read.
    """
    return files.readable(item.path, item.tier, item.location, item.sha256)


@dataclass(frozen=True)
class Coercion:
    """The current identity to write into every object of one study."""

    values: dict[str, str]


@dataclass(frozen=True)
class RetrievePlan:
    """The objects to send, in order (series number, instance number), and the studies to coerce."""

    items: tuple[RetrieveItem, ...]
    coercions: Mapping[str, Coercion] = field(default_factory=dict)

    def coercion_for(self, item: RetrieveItem) -> Coercion | None:
        return self.coercions.get(item.study_instance_uid)

    def syntaxes_by_class(self) -> dict[str, set[str]]:
        """Each SOP class to send and the transfer syntaxes its objects are stored in."""
        found: dict[str, set[str]] = {}
        for item in self.items:
            found.setdefault(item.sop_class_uid, set()).add(item.transfer_syntax_uid)
        return found


@dataclass(frozen=True)
class Payload:
    """What to send for one object: the stored file (`path`) or a `dataset` whose file meta names
    `transfer_syntax_uid` (pixel data already encoded in it when it is a compressed syntax)."""

    transfer_syntax_uid: str
    delivery: Delivery
    path: Path | None = None
    dataset: Dataset | None = None


def plan(engine: Engine, query: Query) -> RetrievePlan:
    """Every archived object under the entities the query's unique keys name (PS3.4 C.4.2.2.1).

    Raises QueryError when the level is unknown or its unique key is missing.
    """
    if query.level not in LEVELS:
        raise QueryError(f"QueryRetrieveLevel: unknown level {query.level!r}")
    depth = LEVELS.index(query.level)
    asked = UNIQUE_KEYS[depth]
    if not query.keys.get(asked, "").strip():
        raise QueryError(f"{asked}: needed to retrieve at the {query.level} level")
    values = single_values(query, depth)
    if values is not None:
        statement, parameters = plan_statement(tuple(values)), values
    else:
        conditions = [
            condition
            for keyword in UNIQUE_KEYS[: depth + 1]
            if (condition := match(keyword, query.keys.get(keyword, ""), 3)) is not None
        ]
        statement, parameters = plan_select().where(and_(*conditions)), {}
    with engine.connect() as connection:
        items = tuple(map(RetrieveItem._make, connection.execute(statement, parameters).all()))
        studies = sorted({item.study_instance_uid for item in items})
        return RetrievePlan(items, study_coercions(connection, studies))


def warm_up(engine: Engine) -> None:
    """Compile now what a process's first retrieve would otherwise compile on its way to its first
    image: the statements of a retrieve plan, of a study's identity check and of the stored-syntax
    reading (6 ms in all, the first time in a process). Raises SQLAlchemyError when the index cannot
    be read."""
    plan(engine, Query("STUDY", {"StudyInstanceUID": NO_STUDY}))
    with engine.connect() as connection:
        current_identity_and_sample_header(connection, NO_STUDY)
    held_syntaxes(engine)


def plan_select() -> Select[Any]:
    """The columns of `RetrieveItem`, in its order, of every instance, in the order they are sent."""
    return (
        select(
            instance.c.path,
            instance.c.sop_class_uid,
            instance.c.sop_instance_uid,
            instance.c.transfer_syntax_uid,
            study.c.study_instance_uid,
            instance.c.tier,
            instance.c.location,
            instance.c.sha256,
        )
        .select_from(joined_tables(3))
        .order_by(series.c.series_number, series.c.id, instance.c.instance_number, instance.c.id)
    )


def single_values(query: Query, depth: int) -> dict[str, str] | None:
    """The query's unique keys down to its level when each one given is a single value that
    `search.match` compares as it is (a UID, a Patient ID without wildcards): what nearly every
    retrieve asks, run by a statement made once (`plan_statement`). None otherwise."""
    values: dict[str, str] = {}
    for keyword in UNIQUE_KEYS[: depth + 1]:
        value = query.keys.get(keyword, "").strip()
        if value in ("", "*"):
            continue
        special = "\\" if KEYS[keyword].kind == "UI" else "*?"
        if any(character in value for character in special):
            return None
        values[keyword] = value
    return values


@functools.cache
def plan_statement(keywords: tuple[str, ...]) -> Select[Any]:
    """`plan_select` for the unique keys `keywords`, each equal to a parameter of its name. Made
    once per combination: building a statement and its cache key was a fifth of a plan's time."""
    return plan_select().where(and_(*[KEYS[keyword].column == bindparam(keyword) for keyword in keywords]))


def plan_instances(engine: Engine, sop_instance_uids: Sequence[str]) -> RetrievePlan:
    """The archived objects among `sop_instance_uids` (forwarding: those queued for one destination),
    in the order asked, with the studies to coerce; an instance no longer archived is left out."""
    statement = (
        select(
            instance.c.path,
            instance.c.sop_class_uid,
            instance.c.sop_instance_uid,
            instance.c.transfer_syntax_uid,
            study.c.study_instance_uid,
        )
        .select_from(joined_tables(3))
        .where(instance.c.sop_instance_uid.in_(list(sop_instance_uids)))
    )
    with engine.connect() as connection:
        found = {row.sop_instance_uid: RetrieveItem(**row._mapping) for row in connection.execute(statement)}
        items = tuple(found[uid] for uid in sop_instance_uids if uid in found)
        studies = sorted({item.study_instance_uid for item in items})
        return RetrievePlan(items, study_coercions(connection, studies))


def study_coercions(connection: Connection, study_instance_uids: Sequence[str]) -> dict[str, Coercion]:
    """The studies whose stored headers disagree with the index's current patient, and how."""
    coercions: dict[str, Coercion] = {}
    for study_uid in study_instance_uids:
        current, header = current_identity_and_sample_header(connection, study_uid)
        if current is None or header is None:
            continue
        if stored_identity(header) != tuple(current.values()):
            coercions[study_uid] = Coercion(current)
    return coercions


@functools.lru_cache(maxsize=STORED_IDENTITIES_KEPT)
def stored_identity(header: bytes) -> tuple[str, ...]:
    """The identity (`IDENTITY`'s attributes, in its order) in a stored header. Kept per header: a
    stored header never changes, and parsing it was a third of the plan of a one-study retrieve."""
    stored = dcmread(io.BytesIO(header), stop_before_pixels=True, force=True)
    return tuple(str(stored.get(keyword, "") or "") for keyword in IDENTITY)


def current_identity_and_sample_header(
    connection: Connection, study_uid: str
) -> tuple[dict[str, str] | None, bytes | None]:
    """The study's patient in the index and the stored header of its first instance (None, None
    for a study the index does not hold)."""
    row = connection.execute(identity_and_sample_header(), {"study_uid": study_uid}).first()
    if row is None:
        return None, None
    values = row._mapping
    return {keyword: str(values[keyword] or "") for keyword in IDENTITY}, values["header"]


@functools.cache
def identity_and_sample_header() -> Select[Any]:
    """One query (made once) for `current_identity_and_sample_header`."""
    sample = (
        select(instance_header.c.header)
        .select_from(
            instance_header.join(instance, instance.c.id == instance_header.c.instance_pk).join(
                series, series.c.id == instance.c.series_pk
            )
        )
        .where(series.c.study_pk == study.c.id)
        .order_by(instance.c.id)
        .limit(1)
        .scalar_subquery()
    )
    columns = [column.label(keyword) for keyword, column in IDENTITY.items()]
    return (
        select(*columns, sample.label("header"))
        .select_from(study.join(patient, patient.c.id == study.c.patient_pk))
        .where(study.c.study_instance_uid == bindparam("study_uid"))
    )


def choose_syntax(stored: str, accepted: Sequence[str]) -> str:
    """The syntax to send an object stored in `stored` to a receiver that accepted `accepted` (its
    preference first): as stored, else uncompressed, else a lossless syntax the archive encodes.

    Raises CannotSend when none of them can carry the object without loss.
    """
    if stored in accepted:
        return stored
    for preferred in (UNCOMPRESSED_OUT, LOSSLESS_ENCODERS):
        for syntax in accepted:
            if syntax in preferred:
                return syntax
    names = ", ".join(UID(syntax).name for syntax in accepted) or "nothing"
    raise CannotSend(f"stored as {UID(stored).name}; the receiver accepted {names}")


@dataclass(frozen=True)
class HeldSyntaxes:
    """How many of the newest stored instances are in each transfer syntax: per SOP class, and
    over all classes (standing for a class none of them is of)."""

    by_class: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    overall: Mapping[str, int] = field(default_factory=dict)

    def of_class(self, sop_class_uid: str) -> Mapping[str, int]:
        return self.by_class.get(sop_class_uid, self.overall)


def retrieve_syntax(proposed: Sequence[str], held: Mapping[str, int]) -> str | None:
    """The syntax to accept from a retrieve's receiver proposing `proposed` (its preference first)
    for a SOP class whose objects are held as `held` counts: of those it proposes that the archive
    can send any object in, the one the most objects are held in, so that most go out as stored,
    neither decoded nor encoded on the way (as on C-MOVE, where the archive proposes the stored
    syntaxes); between equals, the receiver's preference. None when it proposes none of them."""
    producible = [syntax for syntax in proposed if syntax in PRODUCIBLE]
    return max(producible, key=lambda syntax: held.get(syntax, 0)) if producible else None  # max: first of equals


def held_syntaxes(engine: Engine, sample: int = HELD_SAMPLE) -> HeldSyntaxes:
    """What the newest `sample` instances are stored in (one grouped query in the primary key's
    order: a fraction of a millisecond whatever the archive's size)."""
    newest = (
        select(instance.c.sop_class_uid, instance.c.transfer_syntax_uid)
        .order_by(instance.c.id.desc())
        .limit(sample)
        .subquery()
    )
    statement = select(newest.c.sop_class_uid, newest.c.transfer_syntax_uid, func.count()).group_by(
        newest.c.sop_class_uid, newest.c.transfer_syntax_uid
    )
    by_class: dict[str, dict[str, int]] = {}
    overall: dict[str, int] = {}
    with engine.connect() as connection:
        for sop_class_uid, syntax, count in connection.execute(statement):
            by_class.setdefault(sop_class_uid, {})[syntax] = count
            overall[syntax] = overall.get(syntax, 0) + count
    return HeldSyntaxes(by_class, overall)


class HeldSyntaxesReader:
    """`held_syntaxes` for the associations of a process, off their way: the first C-GET reads it
    (and so does the first after a quiet `quiet_seconds`), then a background thread reads it again
    every `refresh_seconds` while C-GETs keep coming, so that the others take a recent reading at
    once (reading it on an association's way to its first image cost 1 to 2 ms there). When the
    index cannot be read, the last reading stands (none at first: the receivers' own preference
    then decides); the log says so once, and again when the index can be read again."""

    def __init__(
        self,
        engine: Engine,
        refresh_seconds: float = HELD_REFRESH_SECONDS,
        quiet_seconds: float = HELD_QUIET_SECONDS,
    ) -> None:
        self.engine = engine
        self.refresh_seconds = refresh_seconds
        self.quiet_seconds = quiet_seconds
        self.lock = threading.Lock()
        self.held = HeldSyntaxes()
        self.asked_at = 0.0
        self.refresher: threading.Thread | None = None  # keeping the reading recent, while asked for
        self.stopping = threading.Event()
        self.failing = False  # the last reading failed (logged once until one succeeds)

    def current(self) -> HeldSyntaxes:
        with self.lock:
            self.asked_at = time.monotonic()
            if self.refresher is None and not self.stopping.is_set():
                self.take(self.reading())
                self.refresher = threading.Thread(target=self.keep_recent, name="held-syntaxes", daemon=True)
                self.refresher.start()
            return self.held

    def keep_recent(self) -> None:
        while not self.stopping.wait(self.refresh_seconds):
            with self.lock:
                if time.monotonic() - self.asked_at >= self.quiet_seconds:
                    self.refresher = None  # the next C-GET reads it itself, and starts this again
                    return
            held = self.reading()  # without the lock: associations asking meanwhile are not held
            with self.lock:
                self.take(held)

    def stop(self) -> None:
        """End the background reading (the process's end ends it too)."""
        self.stopping.set()
        refresher = self.refresher
        if refresher is not None:
            refresher.join()

    def reading(self) -> HeldSyntaxes | None:
        try:
            held = held_syntaxes(self.engine)
        except SQLAlchemyError as error:
            if not self.failing:
                LOGGER.warning("stored syntaxes not read, the last reading stands until they are: %s", error)
            self.failing = True
            return None
        if self.failing:
            LOGGER.info("stored syntaxes read again")
        self.failing = False
        return held

    def take(self, held: HeldSyntaxes | None) -> None:
        """Keep `held` unless it is the same as the reading before: that one then stays, so that
        what is made from a reading is made once while nothing changes (`dicom.retrieve`)."""
        if held is not None and held != self.held:
            self.held = held


def payload(path: Path, item: RetrieveItem, coercion: Coercion | None, accepted: Sequence[str]) -> Payload:
    """What to send for `item` (stored at `path`) to a receiver that accepted `accepted`.

    Raises CannotSend, or OSError when the file cannot be read.
    """
    target = choose_syntax(item.transfer_syntax_uid, accepted)
    if target == item.transfer_syntax_uid:
        if coercion is None:
            return Payload(target, Delivery.AS_STORED, path=path)
        return Payload(target, Delivery.COERCED, dataset=coerce(dcmread(path), coercion))
    dataset = dcmread(path)
    delivery = Delivery.DECODED if target in UNCOMPRESSED_OUT else Delivery.TRANSCODED
    encoded = encode_in(dataset, target)
    return Payload(encoded.file_meta.TransferSyntaxUID, delivery, dataset=coerce(encoded, coercion))


def encoded(chosen: Payload) -> bytes:
    """A payload as a DICOM file (PS3.10): the stored bytes, or the dataset written in its transfer
    syntax (the uncompressed syntaxes re-encoded as asked).

    Raises OSError when the stored file cannot be read.
    """
    if chosen.path is not None:
        return chosen.path.read_bytes()
    assert chosen.dataset is not None
    dataset = chosen.dataset
    syntax = UID(chosen.transfer_syntax_uid)
    dataset.file_meta.TransferSyntaxUID = syntax
    output = io.BytesIO()
    dataset.save_as(output, enforce_file_format=True)  # encoded as its file meta's syntax says
    return output.getvalue()


def encode_in(dataset: Dataset, target: str) -> Dataset:
    """The same instance (same SOP Instance UID) decoded, then encoded losslessly in `target`.

    For an uncompressed target the dataset is left in its own uncompressed encoding: the network
    layer converts between explicit, implicit and deflated little endian.
    """
    stored = dataset.file_meta.TransferSyntaxUID
    if stored.is_compressed:
        dataset.decompress(generate_instance_uid=False, decoding_plugin=PREFERRED_DECODERS.get(stored, ""))
    if target in UNCOMPRESSED_OUT:
        return dataset
    if "PixelData" not in dataset:
        dataset.file_meta.TransferSyntaxUID = UID(target)
        return dataset
    try:
        plugin = LOSSLESS_ENCODERS[target]
        dataset.compress(target, encoding_plugin=plugin, generate_instance_uid=False)
    except (ValueError, RuntimeError, NotImplementedError) as error:
        raise CannotSend(f"cannot encode in {UID(target).name}: {error}") from error
    return dataset


def coerce(dataset: Dataset, coercion: Coercion | None) -> Dataset:
    """Write the current identity into `dataset`, keeping what it replaces (PS3.3 C.12.1.1.9)."""
    if coercion is None:
        return dataset
    originals = Dataset()
    changed = False
    for keyword, value in coercion.values.items():
        old: Any = dataset.get(keyword)
        if str(old or "") == value:
            continue
        changed = True
        setattr(originals, keyword, old if old is not None else "")
        setattr(dataset, keyword, value)
    if not changed:
        return dataset
    item = Dataset()
    item.ModifiedAttributesSequence = DicomSequence([originals])
    item.AttributeModificationDateTime = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    item.ModifyingSystem = MODIFYING_SYSTEM
    item.SourceOfPreviousValues = ""
    item.ReasonForTheAttributeModification = "COERCE"
    existing = list(dataset.get("OriginalAttributesSequence", []))
    dataset.OriginalAttributesSequence = DicomSequence([*existing, item])
    if any(not value.isascii() for value in coercion.values.values()):
        dataset.SpecificCharacterSet = "ISO_IR 192"
    return dataset
