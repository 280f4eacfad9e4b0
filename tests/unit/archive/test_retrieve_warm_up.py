"""`retrieve.warm_up`: a process compiles the statements of its first retrieve before a peer asks for
it, so that the first image of that retrieve does not wait for it (6 ms in a fresh process)."""

from __future__ import annotations

from typing import Any

import pytest
from datagen import PATIENTS, encoded, make_instance
from sqlalchemy import Engine, event
from sqlalchemy.engine.default import CacheStats
from sqlalchemy.exc import SQLAlchemyError

from appliance.archive import retrieve
from appliance.archive.attributes import read_attributes
from appliance.archive.index import Index
from appliance.archive.search import Query
from appliance.archive.storage import WrittenFile


def a_study(engine: Engine) -> str:
    dataset = make_instance("CT", PATIENTS[0])
    dataset.Rows = dataset.Columns = 8
    dataset.PixelData = b"\0" * (8 * 8 * dataset.SamplesPerPixel * (dataset.BitsAllocated // 8))
    Index(engine).add_instance(read_attributes(encoded(dataset)), WrittenFile("a.dcm", 1, "0" * 64), "TEST")
    return str(dataset.StudyInstanceUID)


def compiled_on_the_way(engine: Engine, study_uid: str) -> list[str]:
    """The statements compiled (not found compiled) while a retrieve of `study_uid` is planned and
    the stored syntaxes are read."""
    compiled: list[str] = []

    def note(_connection: Any, _cursor: Any, statement: str, _parameters: Any, context: Any, _many: bool) -> None:
        if context.cache_hit is CacheStats.CACHE_MISS:
            compiled.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        found = retrieve.plan(engine, Query("STUDY", {"StudyInstanceUID": study_uid}))
        assert len(found.items) == 1
        retrieve.held_syntaxes(engine)
    finally:
        event.remove(engine, "before_cursor_execute", note)
    return compiled


def test_after_the_warm_up_the_first_retrieve_compiles_nothing(engine: Engine) -> None:
    study_uid = a_study(engine)
    retrieve.warm_up(engine)
    assert compiled_on_the_way(engine, study_uid) == []


def test_without_it_the_first_retrieve_compiles_its_statements(engine: Engine) -> None:
    """What the warm-up spares: the plan, the identity check and the reading, compiled here."""
    study_uid = a_study(engine)
    assert len(compiled_on_the_way(engine, study_uid)) == 3


def test_an_index_that_cannot_be_read_says_so(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE instance_header")
    with pytest.raises(SQLAlchemyError, match="instance_header"):
        retrieve.warm_up(engine)
