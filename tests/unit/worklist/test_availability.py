"""Image availability: announced once a study has been quiet, once, and not while it still grows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from datagen import PATIENTS, encoded, make_instance
from sqlalchemy import select, update

from appliance.archive.attributes import read_attributes
from appliance.archive.index import Index
from appliance.archive.storage import WrittenFile
from appliance.db import create_index_engine, upgrade_schema
from appliance.db.schema import change
from appliance.worklist.availability import announce_complete_studies

QUIET = timedelta(minutes=2)


def add_image(index: Index, study_uid: str, number: int) -> None:
    dataset = make_instance("MR", PATIENTS[0], study_uid=study_uid, accession_number=f"A{study_uid[-1]}")
    dataset.Rows = dataset.Columns = 4
    dataset.PixelData = b"\0" * 32
    attributes = read_attributes(encoded(dataset))
    index.add_instance(attributes, WrittenFile(f"{study_uid}/{number}.dcm", 1, "0" * 64), "TEST")


def events(index: Index) -> list[tuple[str, str]]:
    with index.engine.connect() as connection:
        rows = connection.execute(
            select(change.c.kind, change.c.study_instance_uid).where(change.c.kind == "images-available")
        )
        return [(row.kind, row.study_instance_uid) for row in rows]


def backdate(index: Index, study_uid: str, age: timedelta) -> None:
    with index.engine.begin() as connection:
        connection.execute(
            update(change).where(change.c.study_instance_uid == study_uid).values(created_at=datetime.now(UTC) - age)
        )


def test_quiet_studies_are_announced_once_and_growing_ones_wait(tmp_path: Path) -> None:
    engine = create_index_engine(f"sqlite:///{tmp_path / 'index.sqlite'}")
    upgrade_schema(engine)
    index = Index(engine)
    add_image(index, "1.2.3.2", 0)
    for number in range(3):
        add_image(index, "1.2.3.1", number)
    backdate(index, "1.2.3.1", timedelta(minutes=10))
    backdate(index, "1.2.3.2", timedelta(minutes=10))
    add_image(index, "1.2.3.2", 1)  # study 2 is still receiving: its last image is fresh
    now = datetime.now(UTC)
    assert announce_complete_studies(index.engine, QUIET, now) == 1
    assert events(index) == [("images-available", "1.2.3.1")]
    assert announce_complete_studies(index.engine, QUIET, now) == 0  # announced once; study 2 still waits
    later = now + QUIET * 3
    assert announce_complete_studies(index.engine, QUIET, later) == 1
    assert events(index) == [("images-available", "1.2.3.1"), ("images-available", "1.2.3.2")]
    assert announce_complete_studies(index.engine, QUIET, later) == 0
    add_image(index, "1.2.3.1", 9)  # a late image: the study is announced again once quiet
    assert announce_complete_studies(index.engine, QUIET, later + QUIET * 3) == 1
