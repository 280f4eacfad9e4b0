"""The rows an indexed instance makes, on SQLite and PostgreSQL: its study and series found or
created and counted, its patient found (ordered, holding its ID, merge survivor) or created, a
second copy refused as a duplicate with nothing counted twice."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from datagen import PATIENTS, encoded, make_instance
from postgres import empty_index
from pydicom.uid import generate_uid
from sqlalchemy import Engine, insert, select
from worklist_data import add_patient, new_order, schedule

from appliance.archive.attributes import InstanceAttributes, read_attributes
from appliance.archive.index import DuplicateInstance, Index
from appliance.archive.storage import WrittenFile
from appliance.config.loader import config_from_document
from appliance.db.schema import change, instance, patient_identity, series, study

CONFIG = config_from_document({}, "test")
ORDER_NUMBERS = itertools.count(70000)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def rows_engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """An index on SQLite, or in a PostgreSQL database of its own, shared by this module's tests
    (each uses UIDs and patient IDs of its own)."""
    engine = empty_index(request, tmp_path_factory, "index_rows")
    yield engine
    engine.dispose()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def attributes_of(
    modality: str,
    study_uid: str,
    series_uid: str,
    patient_id: str = "",
    issuer: str = "",
    accession_number: str = "",
) -> InstanceAttributes:
    dataset = make_instance(modality, PATIENTS[1], study_uid=study_uid, series_uid=series_uid)
    dataset.SOPInstanceUID = generate_uid()
    dataset.PatientID = patient_id or unique("IPP")
    dataset.IssuerOfPatientID = issuer
    dataset.AccessionNumber = accession_number
    dataset.Rows = dataset.Columns = 4
    dataset.PixelData = b"\0" * 32
    return read_attributes(encoded(dataset))


def store(engine: Engine, attributes: InstanceAttributes, size_bytes: int = 100) -> int:
    written = WrittenFile(f"{attributes.sop_instance_uid}.dcm", size_bytes, "0" * 64)
    return Index(engine).add_instance(attributes, written, "MR1")


def study_row(engine: Engine, study_uid: str) -> tuple[object, ...]:
    with engine.connect() as connection:
        row = connection.execute(select(study).where(study.c.study_instance_uid == study_uid)).one()
    return (row.number_of_series, row.number_of_instances, row.size_bytes, row.modalities_in_study)


def series_counts(engine: Engine, study_uid: str) -> dict[str, int]:
    statement = (
        select(series.c.series_instance_uid, series.c.number_of_instances)
        .join(study, study.c.id == series.c.study_pk)
        .where(study.c.study_instance_uid == study_uid)
    )
    with engine.connect() as connection:
        return {uid: count for uid, count in connection.execute(statement)}


def patient_of(engine: Engine, study_uid: str) -> int:
    with engine.connect() as connection:
        found = select(study.c.patient_pk).where(study.c.study_instance_uid == study_uid)
        return int(connection.execute(found).scalar_one())


def test_studies_and_series_are_created_once_and_counted(rows_engine: Engine) -> None:
    study_uid, ct, mr, more_ct = generate_uid(), generate_uid(), generate_uid(), generate_uid()
    patient_id = unique("IPP")
    for modality, series_uid, size in [("CT", ct, 100), ("CT", ct, 200), ("MR", mr, 300), ("CT", more_ct, 400)]:
        store(rows_engine, attributes_of(modality, study_uid, series_uid, patient_id), size)
    assert study_row(rows_engine, study_uid) == (3, 4, 1000, "CT\\MR")
    assert series_counts(rows_engine, study_uid) == {ct: 2, mr: 1, more_ct: 1}
    alone = generate_uid()
    store(rows_engine, attributes_of("US", alone, generate_uid(), patient_id), 50)
    assert study_row(rows_engine, alone) == (1, 1, 50, "US")
    assert patient_of(rows_engine, alone) == patient_of(rows_engine, study_uid)


def test_a_second_copy_is_a_duplicate_and_counts_nothing(rows_engine: Engine) -> None:
    study_uid, series_uid = generate_uid(), generate_uid()
    attributes = attributes_of("CT", study_uid, series_uid)
    store(rows_engine, attributes)
    with pytest.raises(DuplicateInstance):
        store(rows_engine, attributes)
    assert study_row(rows_engine, study_uid) == (1, 1, 100, "CT")
    with rows_engine.connect() as connection:
        published = select(change.c.id).where(change.c.sop_instance_uid == attributes.sop_instance_uid)
        assert len(connection.execute(published).all()) == 1
        indexed = select(instance.c.id).where(instance.c.sop_instance_uid == attributes.sop_instance_uid)
        assert len(connection.execute(indexed).all()) == 1


def test_a_new_study_finds_the_patient_holding_its_id(rows_engine: Engine) -> None:
    patient_id = unique("IPP")
    held = add_patient(rows_engine, patient_id, "ŒUVRARD^Chloé")  # issuer CABINET
    without_issuer, same_issuer, other_issuer = generate_uid(), generate_uid(), generate_uid()
    store(rows_engine, attributes_of("CT", without_issuer, generate_uid(), patient_id))
    store(rows_engine, attributes_of("CT", same_issuer, generate_uid(), patient_id, issuer="CABINET"))
    store(rows_engine, attributes_of("CT", other_issuer, generate_uid(), patient_id, issuer="OTHER"))
    assert patient_of(rows_engine, without_issuer) == patient_of(rows_engine, same_issuer) == held
    assert patient_of(rows_engine, other_issuer) != held
    ambiguous = generate_uid()  # two holders now (CABINET and OTHER): a patient of its own
    store(rows_engine, attributes_of("CT", ambiguous, generate_uid(), patient_id))
    assert patient_of(rows_engine, ambiguous) not in {held, patient_of(rows_engine, other_issuer)}


def test_a_new_study_of_a_merged_patient_joins_the_last_survivor(rows_engine: Engine) -> None:
    absorbed_id = unique("IPP")
    survivor, middle = (add_patient(rows_engine, unique("IPP"), "DUPONT^Jean") for _ in range(2))
    absorbed = add_patient(rows_engine, absorbed_id, "DUPONT^Jean")
    moment = datetime.now(UTC)
    with rows_engine.begin() as connection:
        for patient_pk, merged_into in [(absorbed, middle), (middle, survivor)]:
            connection.execute(
                insert(patient_identity).values(patient_pk=patient_pk, merged_into=merged_into, updated_at=moment)
            )
    study_uid = generate_uid()
    store(rows_engine, attributes_of("CT", study_uid, generate_uid(), absorbed_id, issuer="CABINET"))
    assert patient_of(rows_engine, study_uid) == survivor


def test_a_new_study_joins_the_ordered_patient_by_uid_then_by_accession(rows_engine: Engine) -> None:
    by_uid, by_accession, neither = generate_uid(), generate_uid(), generate_uid()
    accession, other_accession = unique("A")[:16], unique("B")[:16]
    ordered = add_patient(rows_engine, unique("IPP"), "DUPONT^Jean")
    other = add_patient(rows_engine, unique("IPP"), "MARTIN^Paul")
    order = new_order(next(ORDER_NUMBERS), study_instance_uid=by_uid, accession_number=other_accession)
    schedule(rows_engine, CONFIG, order, ordered)
    schedule(rows_engine, CONFIG, new_order(next(ORDER_NUMBERS), accession_number=accession), other)
    store(rows_engine, attributes_of("CT", by_uid, generate_uid(), accession_number=accession))
    store(rows_engine, attributes_of("CT", by_accession, generate_uid(), accession_number=accession))
    store(rows_engine, attributes_of("CT", neither, generate_uid()))
    assert (patient_of(rows_engine, by_uid), patient_of(rows_engine, by_accession)) == (ordered, other)
    assert patient_of(rows_engine, neither) not in {ordered, other}
