"""What leaves the archive carries the current identity (P2).

Files keep the header they arrived with; when the index's patient (after an ADT update, a merge, an
identifier change or a reconciliation) differs from it, the objects sent out by C-GET / C-MOVE are
coerced: the current values are written in, and the original ones are kept in the Original
Attributes Sequence (PS3.3 C.12.1) of what is sent. C-FIND answers come from the index, so they
always carry the current identity.

The check is made once per study, on the header of its first instance (kept in the index): all
instances of a study share their patient.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from sqlalchemy import Engine, select

from appliance.archive.tables import instance, instance_header, patient, series, study

IDENTITY = {
    "PatientID": patient.c.patient_id,
    "IssuerOfPatientID": patient.c.issuer_of_patient_id,
    "PatientName": patient.c.patient_name,
    "PatientBirthDate": patient.c.patient_birth_date,
    "PatientSex": patient.c.patient_sex,
}
MODIFYING_SYSTEM = "PACS appliance"


@dataclass(frozen=True)
class Coercion:
    """The current identity to write into every object of one study."""

    values: dict[str, str]


def study_coercions(engine: Engine, study_instance_uids: list[str]) -> dict[str, Coercion]:
    """The studies whose stored headers disagree with the index's current patient, and how."""
    coercions: dict[str, Coercion] = {}
    for study_uid in study_instance_uids:
        current, header = current_identity_and_sample_header(engine, study_uid)
        if current is None or header is None:
            continue
        stored = dcmread(io.BytesIO(header), stop_before_pixels=True, force=True)
        if any(str(stored.get(keyword, "") or "") != value for keyword, value in current.items()):
            coercions[study_uid] = Coercion(current)
    return coercions


def current_identity_and_sample_header(engine: Engine, study_uid: str) -> tuple[dict[str, str] | None, bytes | None]:
    identity = select(*[column.label(keyword) for keyword, column in IDENTITY.items()]).select_from(
        study.join(patient, patient.c.id == study.c.patient_pk)
    )
    sample = (
        select(instance_header.c.header)
        .select_from(
            instance_header.join(instance, instance.c.id == instance_header.c.instance_pk)
            .join(series, series.c.id == instance.c.series_pk)
            .join(study, study.c.id == series.c.study_pk)
        )
        .where(study.c.study_instance_uid == study_uid)
        .order_by(instance.c.id)
        .limit(1)
    )
    with engine.connect() as connection:
        row = connection.execute(identity.where(study.c.study_instance_uid == study_uid)).first()
        header = connection.execute(sample).scalar()
    current = {keyword: str(value or "") for keyword, value in row._mapping.items()} if row else None
    return current, header


def coerce(dataset: Dataset, coercion: Coercion) -> Dataset:
    """Write the current identity into `dataset`, keeping what it replaces (PS3.3 C.12.1.1.9)."""
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
    item.ModifiedAttributesSequence = Sequence([originals])
    item.AttributeModificationDateTime = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    item.ModifyingSystem = MODIFYING_SYSTEM
    item.SourceOfPreviousValues = ""
    item.ReasonForTheAttributeModification = "COERCE"
    existing = list(dataset.get("OriginalAttributesSequence", []))
    dataset.OriginalAttributesSequence = Sequence([*existing, item])
    if any(not value.isascii() for value in coercion.values.values()):
        dataset.SpecificCharacterSet = "ISO_IR 192"
    return dataset
