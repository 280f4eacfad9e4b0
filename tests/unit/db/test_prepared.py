"""The ingest's statements on the SQLite driver's own connection (`appliance.db.prepared`): the rows
they write are the rows SQLAlchemy's execution writes, value for value and type for type, and the
rows they read are the rows SQLAlchemy reads; they run in the SQLAlchemy connection's transaction;
the driver's errors reach the caller as SQLAlchemy's."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from datagen import PATIENTS, encoded, make_instance
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import Engine, bindparam, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from appliance.archive import index as index_module
from appliance.archive.attributes import read_attributes
from appliance.archive.index import Index
from appliance.archive.storage import WrittenFile
from appliance.db import create_index_engine, prepared, upgrade_schema
from appliance.db.prepared import Prepared
from appliance.db.schema import change, patient, study

TABLES = (
    "patient",
    "study",
    "series",
    "instance",
    "instance_header",
    "instance_metadata",
    "change",
)
MOMENT = datetime(2026, 12, 6, 9, 30, 0, 0, tzinfo=UTC)  # the index's clock, stopped


def objects() -> list[Dataset]:
    """A study of two series (two images in the first), and a second study of the same patient:
    new and known studies, series and patients."""
    study_uid, series_uids = generate_uid(), (generate_uid(), generate_uid())
    return [
        make_instance("CT", PATIENTS[2], study_uid, series_uids[0], 1),
        make_instance("CT", PATIENTS[2], study_uid, series_uids[0], 2),
        make_instance("MR", PATIENTS[2], study_uid, series_uids[1], 1),
        make_instance("CR", PATIENTS[2], generate_uid(), generate_uid(), 1),
    ]


def indexed_rows(folder: Path, datasets: list[Dataset]) -> dict[str, list[tuple[object, ...]]]:
    """Every row (with each value's SQLite type) of the index those objects made in a new index."""
    engine = create_index_engine(f"sqlite:///{folder / 'index.sqlite'}")
    upgrade_schema(engine)
    index = Index(engine)
    for dataset in datasets:
        attributes = read_attributes(encoded(dataset))
        index.add_instance(attributes, WrittenFile(f"{attributes.sop_instance_uid}.dcm", 4321, "a" * 64), "CT1")
    rows = {table: typed_rows(engine, table) for table in TABLES}
    engine.dispose()
    return rows


def typed_rows(engine: Engine, table: str) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        columns = [row[1] for row in connection.execute(text(f"PRAGMA table_info({table})"))]
        selected = ", ".join(f"{column}, typeof({column})" for column in columns)
        return [tuple(row) for row in connection.execute(text(f"SELECT {selected} FROM {table} ORDER BY rowid"))]


def test_the_driver_writes_the_rows_sqlalchemy_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "now", lambda: MOMENT)
    datasets = objects()
    (tmp_path / "driver").mkdir()
    (tmp_path / "sqlalchemy").mkdir()
    on_driver = indexed_rows(tmp_path / "driver", datasets)
    monkeypatch.setattr(prepared, "ON_DRIVER", frozenset())
    by_sqlalchemy = indexed_rows(tmp_path / "sqlalchemy", datasets)
    assert on_driver == by_sqlalchemy
    assert [len(on_driver[table]) for table in ("study", "series", "instance", "change")] == [2, 3, 4, 4]
    first_instance = on_driver["instance"][0]
    typed = zip(first_instance[::2], first_instance[1::2], strict=True)
    assert (MOMENT.strftime("%Y-%m-%d %H:%M:%S.%f"), "text") in typed  # received_at, as SQLAlchemy stores it


def test_a_statement_runs_in_the_transaction_and_counts_with_its_literals(engine: Engine) -> None:
    add_patient, add_study = Prepared(insert(patient)), Prepared(insert(study))
    count = Prepared(update(study).values(number_of_instances=study.c.number_of_instances + 2))
    with engine.connect() as connection:
        with connection.begin() as transaction:
            patient_pk = add_patient.insert(
                connection, {"patient_id": "P1", "created_at": MOMENT, "updated_at": MOMENT}
            )
            values = {"patient_pk": patient_pk, "study_instance_uid": "1.2.3", "number_of_instances": 1}
            assert add_study.insert(connection, {**values, "received_at": MOMENT, "updated_at": MOMENT}) == 1
            count.run(connection, {})
            assert connection.execute(text("SELECT number_of_instances FROM study")).scalar() == 3
            transaction.rollback()
        assert connection.execute(text("SELECT count(*) FROM study")).scalar() == 0


def test_a_uniqueness_conflict_is_sqlalchemys_integrity_error(engine: Engine) -> None:
    publish = Prepared(insert(change))
    values = {"kind": "instance-stored", "study_instance_uid": "1.2.3", "created_at": MOMENT}
    with engine.begin() as connection:
        first = publish.insert(connection, values)
        with pytest.raises(IntegrityError):
            publish.run(connection, {**values, "id": first})


def test_a_statement_first_in_its_connection_is_committed_by_the_callers_commit(engine: Engine) -> None:
    publish = Prepared(insert(change))
    with engine.connect() as connection:
        publish.run(connection, {"kind": "instance-stored", "study_instance_uid": "1.2.3", "created_at": MOMENT})
        connection.commit()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM change")).scalar() == 1


def test_a_delete_runs_in_the_transaction(engine: Engine) -> None:
    publish = Prepared(insert(change))
    forget = Prepared(delete(change).where(change.c.id == bindparam("id")))
    values = {"kind": "instance-stored", "study_instance_uid": "1.2.3", "created_at": MOMENT}
    with engine.begin() as connection:
        kept, forgotten = publish.insert(connection, values), publish.insert(connection, values)
        forget.run(connection, {"id": forgotten})
    with engine.connect() as connection:
        assert connection.execute(text("SELECT id FROM change")).scalars().all() == [kept]


def test_a_select_reads_what_sqlalchemy_reads_in_the_transaction(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_patient = Prepared(insert(patient))
    patients = Prepared(
        select(patient.c.id, patient.c.patient_id, patient.c.created_at, patient.c.patient_birth_date)
        .where(patient.c.patient_id.like(bindparam("pattern")))
        .order_by(patient.c.id)
        .limit(5)  # a literal bind
    )
    with engine.connect() as connection, connection.begin() as transaction:
        for number in (1, 2):
            add_patient.run(connection, {"patient_id": f"P{number}", "created_at": MOMENT, "updated_at": MOMENT})
        on_driver = patients.rows(connection, {"pattern": "P%"})  # before the commit: in the transaction
        monkeypatch.setattr(prepared, "ON_DRIVER", frozenset())
        by_sqlalchemy = patients.rows(connection, {"pattern": "P%"})
        transaction.rollback()
    assert (
        on_driver
        == by_sqlalchemy
        == [(1, "P1", MOMENT.replace(tzinfo=None), ""), (2, "P2", MOMENT.replace(tzinfo=None), "")]
    )
    assert isinstance(on_driver[0][2], datetime)  # read back as SQLAlchemy reads SQLite's text
