"""The DICOM JSON of archived instances (PS3.18 F.2), for DICOMweb metadata and viewers.

Each instance's document is made once (`instance_document`, kept in `instance_metadata`): by the
worker within seconds of a C-STORE (`archive.documents`), at once for STOW-RS; so that the metadata
of a 600-image series is one query and some string joining, never 600 file reads. What may change
after ingest is left out of the stored document and written in when it is served (`metadata`):

- the file meta information: the Transfer Syntax UID (0002,0010) is the index's, which the lossless
  compressor changes when it replaces a file;
- the patient's identity (Patient's Name, ID, issuer, birth date, sex): the one in force now, after
  an ADT update, a merge or a reconciliation, as every retrieve sends it (P2, `archive.retrieve`);
- the pixel data: a BulkDataURI naming the instance's frames on the caller's base URL.

An instance without its document yet (just stored, or archived before the documents existed) gets
it from the header kept in `instance_header` when it is served (a reindex stores those of the
older ones).
"""

from __future__ import annotations

import functools
import io
import json
import logging
from collections.abc import Iterator, MutableSequence
from dataclasses import dataclass
from typing import Any

import pydicom.config
from pydicom import dcmread
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian
from sqlalchemy import Connection, Engine, and_, bindparam, func, select

from appliance.db.schema import instance, instance_header, instance_metadata, patient, series, study

LOGGER = logging.getLogger(__name__)

# The patient identity a retrieve coerces (archive.retrieve.IDENTITY): tag, keyword, VR, index column.
IDENTITY_ELEMENTS = (
    ("00100010", "PN", patient.c.patient_name),
    ("00100020", "LO", patient.c.patient_id),
    ("00100021", "LO", patient.c.issuer_of_patient_id),
    ("00100030", "DA", patient.c.patient_birth_date),
    ("00100040", "CS", patient.c.patient_sex),
)
IDENTITY_TAGS = frozenset(tag for tag, _, _ in IDENTITY_ELEMENTS)
PIXEL_DATA = "7FE00010"
TRANSFER_SYNTAX = "00020010"
LEFT_OUT = frozenset(BaseTag(int(tag, 16)) for tag in IDENTITY_TAGS | {PIXEL_DATA})  # from the stored document
CHARACTER_SET = 0x00080005  # Specific Character Set
# VRs whose JSON member depends on the element's bytes and the character set only (PS3.5 6.2):
# not SQ (items), not the binary ones (kept apart), not the dictionary's ambiguous "US or SS" ones.
PLAIN_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "PN", "SH", "SL", "SS", "ST", "SV",
     "TM", "UC", "UI", "UL", "UR", "US", "UT", "UV"}
)  # fmt: skip
MEMBER_BYTES = 512  # longer values are not kept
MEMBERS_KEPT = 4096
MEMBERS: dict[tuple[object, ...], str] = {}  # element as received -> its JSON member


@dataclass(frozen=True)
class InstanceDocument:
    """One instance's stored DICOM JSON, without identity, file meta and pixels: the members of its
    JSON object without the enclosing braces (so that serving adds members without re-parsing or
    slicing), and the VR its pixel data had ('' when it has none)."""

    document: str
    pixel_data_vr: str


def instance_document(dataset: Dataset, has_pixels: bool) -> InstanceDocument:
    """The document of a dataset read without its pixel data; `has_pixels` says whether the object
    holds pixel data. Elements pydicom cannot express in JSON are left out (never raises).

    The members are pydicom's `to_json_dict` of each element, joined as `json.dumps` joins them;
    the member of an element as received is kept (`MEMBERS`), so that the elements the images of
    a series share (most of a header) are converted once, not once per image (about 60 % of the
    time of a document, issue 14)."""
    try:
        members = [member for member in element_members(dataset) if member]
    except Exception as error:  # pydicom raises many kinds on odd values; the header stays usable
        LOGGER.warning("instance %s: no DICOM JSON (%s)", dataset.get("SOPInstanceUID", "?"), type(error).__name__)
        members = []
    return InstanceDocument(",".join(members), pixel_vr(dataset, has_pixels))


def element_members(dataset: Dataset) -> Iterator[str]:
    """Each element's JSON member (`"tag":{...}`, '' for one pydicom cannot express), in the
    dataset's order, without the identity and the pixel data."""
    encoding = dataset_encoding(dataset)
    tags = dataset.keys()  # in the file's order, as pydicom's to_json_dict (iterating converts)
    with pydicom.config.strict_reading():
        for tag in tags:
            if tag in LEFT_OUT:
                continue
            key = member_key(dataset.get_item(tag, keep_deferred=True), encoding)
            member = MEMBERS.get(key) if key is not None else None
            if member is None:
                member = element_member(dataset, tag)
                if key is not None:
                    remember(key, member)
            yield member


def dataset_encoding(dataset: Dataset) -> object:
    """The character set the text elements of `dataset` are decoded with, hashable (a key part)."""
    character_set = dataset.original_character_set or dataset._character_set
    return tuple(character_set) if isinstance(character_set, list | MutableSequence) else character_set


def member_key(raw: object, encoding: object) -> tuple[object, ...] | None:
    """What an element's member depends on, when that is only its own bytes (and the character
    set): a public element as read, short, of a VR pydicom does not infer from other elements.
    None for the others (converted every time)."""
    if not isinstance(raw, RawDataElement) or not isinstance(raw.value, bytes) or len(raw.value) > MEMBER_BYTES:
        return None
    tag = raw.tag.real  # a plain int: hashing and comparing the key stays in C (BaseTag.__eq__ is Python)
    if (tag >> 16) % 2 or tag == CHARACTER_SET:
        return None
    vr = raw.VR
    if vr is None:  # implicit VR: the dictionary's, unless it depends on other elements
        vr = dictionary_vr_or_none(tag)
    if vr is None or vr not in PLAIN_VRS:
        return None
    return (tag, raw.VR, vr, raw.value, raw.is_little_endian, raw.is_implicit_VR, encoding)


def element_member(dataset: Dataset, tag: BaseTag) -> str:
    """One element's member as pydicom's `to_json_dict(suppress_invalid_tags=True)` makes it;
    '' (and a warning, as pydicom logs it) when pydicom cannot convert it."""
    json_key = f"{tag:08X}"
    try:
        element = dataset[tag].to_json_dict(bulk_data_element_handler=None, bulk_data_threshold=1024)
    except Exception as error:
        LOGGER.warning("Error while processing tag %s: %s", json_key, error)
        return ""
    return f'"{json_key}":' + json.dumps(element, ensure_ascii=False, separators=(",", ":"))


def remember(key: tuple[object, ...], member: str) -> None:
    """Keep `member` for `key`; the whole memory is dropped when full (a new series refills it)."""
    if len(MEMBERS) >= MEMBERS_KEPT:
        MEMBERS.clear()
    MEMBERS[key] = member


@functools.cache
def dictionary_vr_or_none(tag: int) -> str | None:
    """The VR of a public tag in pydicom's dictionary, None when unknown or ambiguous."""
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return None
    return vr if vr in PLAIN_VRS else None


def pixel_vr(dataset: Dataset, has_pixels: bool) -> str:
    """OW for native pixels of more than 8 bits, OB otherwise (PS3.5 A.1, A.4); '' without pixels."""
    if not has_pixels:
        return ""
    syntax = dataset.file_meta.get("TransferSyntaxUID") if hasattr(dataset, "file_meta") else None
    if syntax is not None and UID(syntax).is_encapsulated:
        return "OB"
    return "OW" if int(dataset.get("BitsAllocated", 8) or 8) > 8 else "OB"


def document_of_file(encoded: bytes) -> InstanceDocument:
    """The document of a whole DICOM file (the lossless compressor's new file, say)."""
    stream = io.BytesIO(encoded)
    dataset = dcmread(stream, stop_before_pixels=True, force=True)
    return instance_document(dataset, stream.tell() < len(encoded))


def document_of_header(
    header: bytes, received_size_bytes: int, received_transfer_syntax_uid: str, dataset: Dataset | None = None
) -> InstanceDocument:
    """The document of an instance from the header the index kept at ingest: the one the ingest
    makes of the object as received, with pixel data when the object went on past its header (a
    deflated object, whose header is the whole of it: when it describes an image, as
    `attributes.has_pixels` has it). `dataset` is the header already read, else pydicom reads it."""
    if dataset is None:
        dataset = dcmread(io.BytesIO(header), stop_before_pixels=True, force=True)
    if received_transfer_syntax_uid == DeflatedExplicitVRLittleEndian:
        return instance_document(dataset, "Rows" in dataset)
    return instance_document(dataset, len(header) < received_size_bytes)


@dataclass(frozen=True)
class Scope:
    """What metadata is asked for: a study, one of its series, or one instance of it."""

    study_instance_uid: str
    series_instance_uid: str = ""
    sop_instance_uid: str = ""


def metadata(engine: Engine, scope: Scope, base_url: str) -> str | None:
    """The DICOM JSON array (text) of every instance in `scope`, in series then instance order, with
    the current identity and transfer syntax, pixel data as BulkDataURIs under `base_url` (the
    DICOMweb root, e.g. https://pacs.cabinet.lan/dicomweb). None when nothing matches."""
    with engine.connect() as connection:
        rows = connection.execute(metadata_statement(scope)).all()  # one fetch, not one call per row
        if not rows:
            return None
        missing = stored_headers(connection, [row.id for row in rows if row.document is None])
    identities: dict[int, str] = {}
    escaped_base = json.dumps(base_url)[1:-1]  # UIDs need no escaping; a base URL from a Host header might
    parts = []
    for row in rows:
        identity = identities.get(row.patient_pk)
        if identity is None:
            identity = identities[row.patient_pk] = identity_fragment(row)
        parts.append(served_document(row, identity, escaped_base, missing))
    return "[" + ",".join(parts) + "]"


def scope_conditions(scope: Scope) -> Any:
    """The instances of `scope`, never those of a study whose purge is confirmed (hidden, R2)."""
    conditions = [study.c.study_instance_uid == scope.study_instance_uid, study.c.purge_requested_at.is_(None)]
    if scope.series_instance_uid:
        conditions.append(series.c.series_instance_uid == scope.series_instance_uid)
    if scope.sop_instance_uid:
        conditions.append(instance.c.sop_instance_uid == scope.sop_instance_uid)
    return and_(*conditions)


def scope_tables() -> Any:
    """Instances with their series, study, current patient and stored document (when made)."""
    return (
        instance.join(series, series.c.id == instance.c.series_pk)
        .join(study, study.c.id == series.c.study_pk)
        .join(patient, patient.c.id == study.c.patient_pk)
        .outerjoin(instance_metadata, instance_metadata.c.instance_pk == instance.c.id)
    )


def metadata_statement(scope: Scope) -> Any:
    return (
        select(
            instance.c.id,
            instance.c.sop_instance_uid,
            instance.c.transfer_syntax_uid,
            instance.c.number_of_frames,
            instance.c.received_size_bytes,
            instance.c.received_transfer_syntax_uid,
            series.c.series_instance_uid,
            study.c.study_instance_uid,
            study.c.patient_pk,
            instance_metadata.c.document,
            instance_metadata.c.pixel_data_vr,
            *[column.label(f"identity_{tag}") for tag, _, column in IDENTITY_ELEMENTS],
        )
        .select_from(scope_tables())
        .where(scope_conditions(scope))
        .order_by(series.c.series_number, series.c.id, instance.c.instance_number, instance.c.id)
    )


def version(connection: Connection, scope: Scope) -> tuple[Any, ...] | None:
    """What the metadata of a study or series is made of, in a few numbers read by one aggregate
    query (no document read): they change when an instance is added or deleted (count, newest row),
    compressed (its size, `compressed_at`), moved between tiers, given its stored document (by the
    worker after a C-STORE, or a reindex), or when the patient's identity changes (an ADT update, a
    merge or a reconciliation moving the study: the patient row and its identity). None when
    nothing matches."""
    statement = VERSION_OF_SERIES if scope.series_instance_uid else VERSION_OF_STUDY
    values = {"study": scope.study_instance_uid, "series": scope.series_instance_uid}
    found = connection.execute(statement, values).one()
    return tuple(found) if found[0] else None


def version_statement(of_series: bool) -> Any:
    """The aggregate query of `version`, built once (bound to :study, and :series for a series)."""
    conditions = [study.c.study_instance_uid == bindparam("study"), study.c.purge_requested_at.is_(None)]
    if of_series:
        conditions.append(series.c.series_instance_uid == bindparam("series"))
    identity = [func.max(column) for _, _, column in IDENTITY_ELEMENTS]
    return (
        select(
            func.count(instance.c.id),
            func.max(instance.c.id),
            func.sum(instance.c.size_bytes),
            func.count(instance.c.compressed_at),
            func.max(instance.c.compressed_at),
            func.count(instance.c.moved_at),
            func.max(instance.c.moved_at),
            func.count(instance_metadata.c.instance_pk),
            func.max(patient.c.id),
            func.max(patient.c.updated_at),
            *identity,
        )
        .select_from(scope_tables())
        .where(and_(*conditions))
    )


VERSION_OF_STUDY = version_statement(of_series=False)
VERSION_OF_SERIES = version_statement(of_series=True)


def stored_headers(connection: Connection, instance_ids: list[int]) -> dict[int, bytes]:
    """The headers of the instances archived before their documents were made at ingest."""
    if not instance_ids:
        return {}
    statement = select(instance_header.c.instance_pk, instance_header.c.header).where(
        instance_header.c.instance_pk.in_(instance_ids)
    )
    return {row.instance_pk: row.header for row in connection.execute(statement)}


def identity_fragment(row: Any) -> str:
    """The patient's identity as DICOM JSON members (without the braces)."""
    members = []
    for tag, vr, _ in IDENTITY_ELEMENTS:
        value = str(getattr(row, f"identity_{tag}") or "")
        element: dict[str, Any] = {"vr": vr}
        if value:
            element["Value"] = [{"Alphabetic": value}] if vr == "PN" else [value]
        members.append(f'"{tag}":{json.dumps(element, ensure_ascii=False, separators=(",", ":"))}')
    return ",".join(members)


def served_document(row: Any, identity: str, base_url: str, headers: dict[int, bytes]) -> str:
    """One instance's JSON object as it leaves: stored members plus identity, syntax and pixels."""
    document, pixel_data_vr = row.document, row.pixel_data_vr
    if document is None:
        header = headers.get(row.id)
        kept = InstanceDocument("", "")
        if header is not None:
            kept = document_of_header(header, row.received_size_bytes, row.received_transfer_syntax_uid)
        document, pixel_data_vr = kept.document, kept.pixel_data_vr
    syntax = row.transfer_syntax_uid
    added = [identity, f'"{TRANSFER_SYNTAX}":{{"vr":"UI","Value":["{syntax}"]}}']
    if pixel_data_vr:
        vr = "OB" if encapsulated(syntax) else pixel_data_vr
        url = (
            f"{base_url}/studies/{row.study_instance_uid}/series/{row.series_instance_uid}"
            f"/instances/{row.sop_instance_uid}/frames/{frame_list(row.number_of_frames)}"
        )
        added.append(f'"{PIXEL_DATA}":{{"vr":"{vr}","BulkDataURI":"{url}"}}')
    if document:
        added.append(document)
    return "{" + ",".join(added) + "}"


@functools.cache
def encapsulated(transfer_syntax_uid: str) -> bool:
    """Whether pixel data in this syntax is encapsulated (compressed fragments, always OB)."""
    return UID(transfer_syntax_uid).is_encapsulated


@functools.cache
def frame_list(number_of_frames: int | None) -> str:
    """`1`, or `1,2,…,N` for a multi-frame instance (PS3.18 8.3.5.1 frame list)."""
    return ",".join(str(number) for number in range(1, max(number_of_frames or 1, 1) + 1))
