"""Key images (K1, IHE Key Image Note): Key Object Selection documents, read and created.

`key_objects` lists the KOS documents a study holds (whoever made them: a modality, a workstation,
this box), read from the headers kept at ingest (a KOS has no pixel data, so its header is the whole
object): title (CID 7010), note, observer, date and the images they flag.

`create_key_object` makes a new KOS for images a radiologist flagged in the console's viewer
(TID 2010, built with highdicom's `KeyObjectSelectionDocument`): in a new series of the study, the
current identity of the patient written in (an ADT update or a merge since the images arrived must
not bring the old identity back), the evidence (Current Requested Procedure Evidence Sequence)
listing every flagged image under its study and series, the order's accession in the Referenced
Request Sequence, the person who flagged them as the observer. The document then goes through the
archive's ordinary ingest, like any C-STORE: durable before success, indexed, on the change feed,
and so found by C-FIND, C-MOVE, C-GET and DICOMweb peers.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from highdicom.ko import KeyObjectSelection, KeyObjectSelectionDocument
from highdicom.sr import ObserverContext, PersonObserverIdentifyingAttributes
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid
from sqlalchemy import Engine, func, select

from appliance.archive.ingest import IncomingObject, Ingest, StoreOutcome
from appliance.archive.retrieve import current_identity_and_sample_header
from appliance.db.schema import instance, instance_header, series, study

KEY_OBJECT_SELECTION = UID("1.2.840.10008.5.1.4.1.1.88.59")
KEY_OBJECT_DESCRIPTION = "113012"  # DCM, TID 2010 row 2
FIRST_SERIES_NUMBER = 900  # where the box's own key-image series start in a study
MANUFACTURER = "PACS appliance"
NOTE_LIMIT = 1024  # TID 2010: TEXT, UT; kept short enough to read in a viewer
# CID 7010 titles a radiologist picks in the viewer; "Of Interest" first (the default). Left out on
# purpose: the rejection notes (113001, 113037, 113038, 113039: IHE IOCM, they ask a archive to delete
# images), the manifests (113030 to 113035, made by exporting systems) and the radiotherapy and trial
# titles a radiology practice never uses.
TITLES: tuple[Code, ...] = (
    codes.DCM.OfInterest,
    codes.DCM.ForReferringProvider,
    codes.DCM.ForSurgery,
    codes.DCM.ForTeaching,
    codes.DCM.ForConference,
    codes.DCM.ForTherapy,
    codes.DCM.ForPatient,
    codes.DCM.ForPeerReview,
    codes.DCM.ForResearch,
    codes.DCM.QualityIssue,
    codes.DCM.BestInSet,
    codes.DCM.ForPrinting,
    codes.DCM.ForReportAttachment,
    codes.DCM.ForLitigation,
    codes.DCM.ForDiagnosis,
    codes.DCM.ForPhysicianReview,
    codes.DCM.ForTumorBoard,
)
TITLE_BY_VALUE = {title.value: title for title in TITLES}


class KeyImageError(Exception):
    """The request cannot make a KOS (no image, an image not of the study, an unknown title); or the
    archive refused to store it. The message says which (English, for the log and the edge)."""


@dataclass(frozen=True)
class FlaggedImage:
    """One image a KOS flags: an instance and, for a multi-frame one, a frame (1-based) or None."""

    series_instance_uid: str
    sop_instance_uid: str
    frame: int | None = None


@dataclass(frozen=True)
class Author:
    """Who flagged the images: the console account (username for the trail, name for the document)."""

    username: str
    full_name: str


@dataclass(frozen=True)
class KeyObject:
    """One KOS of a study as the console and the viewer list it."""

    sop_instance_uid: str
    series_instance_uid: str
    title_code: str
    title: str  # the code meaning as written in the document (English for CID 7010)
    note: str
    observer: str  # the person observer name, '' when the document names none
    content_date: date | None
    content_time: str
    images: tuple[FlaggedImage, ...]


@dataclass(frozen=True)
class Created:
    """The KOS just stored, and the patient and accession it was written with (for the audit)."""

    key_object: KeyObject
    patient_id: str
    issuer_of_patient_id: str
    patient_name: str
    accession_number: str


def key_objects(engine: Engine, study_instance_uid: str) -> list[KeyObject]:
    """The KOS documents of a study, oldest first ([] for a study without any or unknown)."""
    statement = (
        select(instance_header.c.header)
        .select_from(
            instance_header.join(instance, instance.c.id == instance_header.c.instance_pk)
            .join(series, series.c.id == instance.c.series_pk)
            .join(study, study.c.id == series.c.study_pk)
        )
        .where(study.c.study_instance_uid == study_instance_uid)
        .where(instance.c.sop_class_uid == KEY_OBJECT_SELECTION)
        .order_by(instance.c.received_at, instance.c.id)
    )
    with engine.connect() as connection:
        headers = list(connection.execute(statement).scalars())
    return [read_key_object(dcmread(io.BytesIO(header), force=True)) for header in headers]


def read_key_object(document: Dataset) -> KeyObject:
    """What a KOS says: its title, note, observer and flagged images (series taken from the evidence)."""
    series_of = evidence_series(document)
    note, observer, images = "", "", []
    for item in document.get("ContentSequence", []):
        value_type = item.get("ValueType", "")
        name = item.ConceptNameCodeSequence[0].CodeValue if "ConceptNameCodeSequence" in item else ""
        if value_type == "TEXT" and name == KEY_OBJECT_DESCRIPTION:
            note = str(item.get("TextValue", ""))
        elif value_type == "PNAME" and not observer:
            observer = str(item.get("PersonName", "")).strip("^")
        elif value_type in ("IMAGE", "COMPOSITE"):
            images.extend(flagged_images(item, series_of))
    title = document.ConceptNameCodeSequence[0] if "ConceptNameCodeSequence" in document else Dataset()
    return KeyObject(
        sop_instance_uid=str(document.SOPInstanceUID),
        series_instance_uid=str(document.get("SeriesInstanceUID", "")),
        title_code=str(title.get("CodeValue", "")),
        title=str(title.get("CodeMeaning", "")),
        note=note,
        observer=observer,
        content_date=parse_date(str(document.get("ContentDate", ""))),
        content_time=str(document.get("ContentTime", "")),
        images=tuple(images),
    )


def evidence_series(document: Dataset) -> dict[str, str]:
    """SOP Instance UID to Series Instance UID, from the document's evidence sequences."""
    found: dict[str, str] = {}
    for keyword in ("CurrentRequestedProcedureEvidenceSequence", "IdenticalDocumentsSequence"):
        for study_item in document.get(keyword, []):
            for series_item in study_item.get("ReferencedSeriesSequence", []):
                for reference in series_item.get("ReferencedSOPSequence", []):
                    found[str(reference.ReferencedSOPInstanceUID)] = str(series_item.SeriesInstanceUID)
    return found


def flagged_images(item: Dataset, series_of: dict[str, str]) -> list[FlaggedImage]:
    """The images one IMAGE (or COMPOSITE) content item flags: one per frame when it names frames."""
    images = []
    for reference in item.get("ReferencedSOPSequence", []):
        sop_instance_uid = str(reference.ReferencedSOPInstanceUID)
        series_uid = series_of.get(sop_instance_uid, "")
        frames = reference.get("ReferencedFrameNumber")
        if frames is None:
            images.append(FlaggedImage(series_uid, sop_instance_uid))
            continue
        for frame in frames if isinstance(frames, Sequence) else [frames]:
            images.append(FlaggedImage(series_uid, sop_instance_uid, int(frame)))
    return images


def parse_date(value: str) -> date | None:
    try:
        return datetime.strptime(value[:8], "%Y%m%d").date()
    except ValueError:
        return None


def create_key_object(
    engine: Engine,
    ingest: Ingest,
    study_instance_uid: str,
    images: Sequence[FlaggedImage],
    title_code: str,
    note: str,
    author: Author,
    institution_name: str,
    calling_ae_title: str,
) -> Created:
    """Make a KOS flagging `images` (instances of the study) and store it through `ingest`.

    Raises KeyImageError for no image, an image not of the study, a frame beyond the instance's,
    an unknown title, a note too long, or when the archive refuses to store the document.
    """
    title = TITLE_BY_VALUE.get(title_code)
    if title is None:
        raise KeyImageError(f"title {title_code!r} is not one of the CID 7010 titles offered")
    if not images:
        raise KeyImageError("no image flagged")
    if len(note) > NOTE_LIMIT:
        raise KeyImageError(f"the note is longer than {NOTE_LIMIT} characters")
    evidence, series_number = flagged_evidence(engine, study_instance_uid, images)
    document = build_document(evidence, images, title, note, author, institution_name, series_number)
    encoded = encode(document)
    result = ingest.store(IncomingObject(encoded, str(document.SOPInstanceUID), KEY_OBJECT_SELECTION, calling_ae_title))
    if result.outcome is not StoreOutcome.STORED:
        raise KeyImageError(f"the archive did not store the document: {result.outcome.value} {result.detail}")
    return Created(
        key_object=read_key_object(dcmread(io.BytesIO(encoded))),
        patient_id=str(document.PatientID),
        issuer_of_patient_id=str(document.get("IssuerOfPatientID", "")),
        patient_name=str(document.PatientName),
        accession_number=str(document.get("AccessionNumber", "")),
    )


def flagged_evidence(
    engine: Engine, study_instance_uid: str, images: Sequence[FlaggedImage]
) -> tuple[list[Dataset], int]:
    """The headers of the flagged instances with the patient's current identity written in, and the
    number of the new series. Raises KeyImageError for an instance not of the study or a bad frame."""
    wanted = {image.sop_instance_uid for image in images}
    statement = (
        select(instance.c.sop_instance_uid, instance.c.number_of_frames, instance_header.c.header)
        .select_from(
            instance.join(instance_header, instance_header.c.instance_pk == instance.c.id)
            .join(series, series.c.id == instance.c.series_pk)
            .join(study, study.c.id == series.c.study_pk)
        )
        .where(study.c.study_instance_uid == study_instance_uid)
        .where(instance.c.sop_instance_uid.in_(sorted(wanted)))
    )
    highest = (
        select(func.max(series.c.series_number))
        .select_from(series.join(study, study.c.id == series.c.study_pk))
        .where(study.c.study_instance_uid == study_instance_uid)
    )
    with engine.connect() as connection:
        rows = {row.sop_instance_uid: row for row in connection.execute(statement)}
        current, _header = current_identity_and_sample_header(connection, study_instance_uid)
        series_number = max(FIRST_SERIES_NUMBER - 1, int(connection.execute(highest).scalar() or 0)) + 1
    check_flagged(images, rows)
    evidence: list[Dataset] = []
    for sop_instance_uid in dict.fromkeys(image.sop_instance_uid for image in images):
        header = dcmread(io.BytesIO(rows[sop_instance_uid].header), stop_before_pixels=True, force=True)
        for keyword, value in (current or {}).items():
            setattr(header, keyword, value)
        evidence.append(header)
    return evidence, series_number


def check_flagged(images: Sequence[FlaggedImage], rows: Mapping[str, Any]) -> None:
    for image in images:
        row = rows.get(image.sop_instance_uid)
        if row is None:
            raise KeyImageError(f"instance {image.sop_instance_uid} is not an instance of this study")
        frames = getattr(row, "number_of_frames", None) or 1
        if image.frame is not None and not 1 <= image.frame <= frames:
            raise KeyImageError(f"instance {image.sop_instance_uid} has no frame {image.frame}")


def build_document(
    evidence: list[Dataset],
    images: Sequence[FlaggedImage],
    title: Code,
    note: str,
    author: Author,
    institution_name: str,
    series_number: int,
) -> Dataset:
    """The KOS (TID 2010) as highdicom builds it, frames added to the image references that name some."""
    observer = ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=PersonObserverIdentifyingAttributes(
            name=f"{author.full_name or author.username}^"  # one component: the name as the account spells it
        ),
    )
    content = KeyObjectSelection(
        document_title=title,
        referenced_objects=evidence,
        observer_person_context=observer,
        description=note.strip() or None,
    )
    document = KeyObjectSelectionDocument(
        evidence=evidence,
        content=content,
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        institution_name=institution_name or None,
        requested_procedures=requested_procedures(evidence[0]),
        transfer_syntax_uid=ExplicitVRLittleEndian,
    )
    add_frames(document, images)
    document.SpecificCharacterSet = "ISO_IR 192"  # names and notes in French
    document.SeriesDescription = "Images clés"
    return document


def requested_procedures(sample: Dataset) -> list[Dataset] | None:
    """The Referenced Request Sequence item of the images' order (PS3.3 C.17.6.2.1), when it has one."""
    accession_number = str(sample.get("AccessionNumber", "") or "")
    if not accession_number:
        return None
    request = Dataset()
    request.StudyInstanceUID = sample.StudyInstanceUID
    request.AccessionNumber = accession_number
    request.RequestedProcedureID = str(sample.get("RequestedProcedureID", "") or accession_number)[:16]
    request.PlacerOrderNumberImagingServiceRequest = ""
    request.FillerOrderNumberImagingServiceRequest = ""
    request.ReferencedStudySequence = []
    request.RequestedProcedureDescription = str(sample.get("StudyDescription", "") or "")
    request.RequestedProcedureCodeSequence = []
    return [request]


def add_frames(document: Dataset, images: Sequence[FlaggedImage]) -> None:
    """Write Referenced Frame Number (PS3.3 C.18.3) in the image items of multi-frame instances."""
    frames: dict[str, list[int]] = {}
    for image in images:
        if image.frame is not None:
            frames.setdefault(image.sop_instance_uid, []).append(image.frame)
    for item in document.ContentSequence:
        for reference in item.get("ReferencedSOPSequence", []):
            chosen = frames.get(str(reference.ReferencedSOPInstanceUID))
            if chosen:
                reference.ReferencedFrameNumber = sorted(set(chosen)) if len(set(chosen)) > 1 else chosen[0]


def encode(document: Dataset) -> bytes:
    """The document as a DICOM file (preamble, file meta, explicit VR little endian)."""
    buffer = io.BytesIO()
    document.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


__all__ = [
    "TITLES",
    "Author",
    "Created",
    "FlaggedImage",
    "KeyImageError",
    "KeyObject",
    "create_key_object",
    "key_objects",
]
