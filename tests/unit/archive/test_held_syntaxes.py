"""The syntax a retrieve's receiver is accepted in (`retrieve_syntax`): of those it proposes, the one
the most of the archive's newest objects are held in, so that they go out as stored; what the newest
objects are held in, read from a real index (SQLite and PostgreSQL); and when it is read (by the first
C-GET, then in the background while C-GETs come)."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator

import pytest
from datagen import PATIENTS, encoded, make_instance
from postgres import empty_index
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)
from sqlalchemy import Engine, text

from appliance.archive import retrieve
from appliance.archive.attributes import read_attributes
from appliance.archive.index import Index
from appliance.archive.retrieve import HeldSyntaxes, HeldSyntaxesReader, held_syntaxes, retrieve_syntax
from appliance.archive.storage import WrittenFile

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
GETSCU_JPEG_LS = [JPEGLSLossless, ExplicitVRLittleEndian, ImplicitVRLittleEndian]  # getscu +xt


def test_the_proposed_syntax_the_most_objects_are_held_in_is_accepted() -> None:
    assert retrieve_syntax(GETSCU_JPEG_LS, {ExplicitVRLittleEndian: 200}) == ExplicitVRLittleEndian
    assert retrieve_syntax(GETSCU_JPEG_LS, {ExplicitVRLittleEndian: 20, JPEGLSLossless: 180}) == JPEGLSLossless
    assert retrieve_syntax(GETSCU_JPEG_LS, {JPEG2000Lossless: 500, ImplicitVRLittleEndian: 3}) == ImplicitVRLittleEndian


def test_between_equals_and_with_nothing_held_the_receivers_preference_decides() -> None:
    assert retrieve_syntax(GETSCU_JPEG_LS, {}) == JPEGLSLossless
    assert retrieve_syntax(GETSCU_JPEG_LS, {JPEG2000Lossless: 9}) == JPEGLSLossless
    tied = {ExplicitVRLittleEndian: 1, JPEGLSLossless: 1}
    assert retrieve_syntax(GETSCU_JPEG_LS, tied) == JPEGLSLossless
    assert retrieve_syntax([ExplicitVRLittleEndian, JPEGLSLossless], tied) == ExplicitVRLittleEndian
    assert retrieve_syntax([DeflatedExplicitVRLittleEndian, RLELossless], {ExplicitVRLittleEndian: 5}) == (
        DeflatedExplicitVRLittleEndian
    )


def test_a_held_syntax_the_archive_cannot_produce_is_never_accepted() -> None:
    """Objects received in JPEG lossless (process 14) or lossy JPEG: accepting that syntax would leave
    every other object with no way out, the archive writes neither."""
    held = {JPEGLosslessSV1: 300, JPEGBaseline8Bit: 300, ExplicitVRLittleEndian: 1}
    assert retrieve_syntax([JPEGLosslessSV1, JPEGBaseline8Bit, ExplicitVRLittleEndian], held) == ExplicitVRLittleEndian
    assert retrieve_syntax([JPEGLosslessSV1, JPEGBaseline8Bit], held) is None


def test_a_class_none_of_the_newest_objects_is_of_goes_by_all_of_them() -> None:
    held = HeldSyntaxes({CT: {JPEGLSLossless: 7}}, {JPEGLSLossless: 7, ExplicitVRLittleEndian: 9})
    assert held.of_class(CT) == {JPEGLSLossless: 7}
    assert held.of_class(MR) == {JPEGLSLossless: 7, ExplicitVRLittleEndian: 9}


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """An empty index of the test's own."""
    engine = empty_index(request, tmp_path_factory, "held_syntaxes")
    yield engine
    engine.dispose()


def add(engine: Engine, modality: str, syntax: str, count: int) -> None:
    """`count` instances of `modality` indexed as stored in `syntax` (only the index matters here)."""
    index = Index(engine)
    for _ in range(count):
        dataset = make_instance(modality, PATIENTS[0])
        dataset.Rows = dataset.Columns = 8
        dataset.PixelData = b"\0" * (8 * 8 * dataset.SamplesPerPixel * (dataset.BitsAllocated // 8))
        attributes = dataclasses.replace(read_attributes(encoded(dataset)), transfer_syntax_uid=syntax)
        index.add_instance(attributes, WrittenFile(f"{dataset.SOPInstanceUID}.dcm", 1, "0" * 64), "TEST")


def test_what_the_newest_objects_are_held_in_is_counted_per_class(engine: Engine) -> None:
    assert held_syntaxes(engine) == HeldSyntaxes({}, {})
    add(engine, "CT", ExplicitVRLittleEndian, 6)
    add(engine, "CT", JPEGLSLossless, 4)
    add(engine, "MR", JPEG2000Lossless, 2)
    held = held_syntaxes(engine)
    assert held.of_class(CT) == {ExplicitVRLittleEndian: 6, JPEGLSLossless: 4}
    assert held.of_class(MR) == {JPEG2000Lossless: 2}
    assert held.overall == {ExplicitVRLittleEndian: 6, JPEGLSLossless: 4, JPEG2000Lossless: 2}


def test_only_the_newest_objects_count(engine: Engine) -> None:
    """An archive compressed long ago whose latest study is still uncompressed: that study decides."""
    add(engine, "CT", JPEGLSLossless, 8)
    add(engine, "CT", ExplicitVRLittleEndian, 5)
    assert held_syntaxes(engine, sample=5).of_class(CT) == {ExplicitVRLittleEndian: 5}
    assert held_syntaxes(engine, sample=7).of_class(CT) == {ExplicitVRLittleEndian: 5, JPEGLSLossless: 2}


class Readings:
    """Counts the readings of the index, and lets a test wait for the next one."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self.made = threading.Condition()
        original = retrieve.held_syntaxes

        def counted(engine: Engine) -> HeldSyntaxes:
            try:
                return original(engine)
            finally:
                with self.made:
                    self.count += 1
                    self.made.notify_all()

        monkeypatch.setattr(retrieve, "held_syntaxes", counted)

    def wait_for(self, count: int) -> None:
        with self.made:
            assert self.made.wait_for(lambda: self.count >= count, timeout=30), f"{self.count} readings"

    def seen_by(self, reader: HeldSyntaxesReader, overall: dict[str, int]) -> bool:
        """Whether `reader` gives `overall` within the next few background readings (one begun
        before the index changed may end after)."""
        start = self.count
        for count in range(start + 1, start + 5):
            self.wait_for(count)
            if reader.current().overall == overall:
                return True
        return False


@pytest.fixture()
def readings(monkeypatch: pytest.MonkeyPatch) -> Readings:
    return Readings(monkeypatch)


@pytest.fixture()
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(retrieve.time, "monotonic", lambda: now[0])
    return now


def test_the_first_c_get_reads_at_once_and_later_ones_get_a_reading_kept_recent(
    engine: Engine, readings: Readings
) -> None:
    reader = HeldSyntaxesReader(engine, refresh_seconds=0.01)
    try:
        add(engine, "CT", ExplicitVRLittleEndian, 1)
        assert reader.current().overall == {ExplicitVRLittleEndian: 1}
        assert readings.count >= 1  # read at once (the background may have read again since)
        add(engine, "CT", JPEGLSLossless, 2)
        assert readings.seen_by(reader, {ExplicitVRLittleEndian: 1, JPEGLSLossless: 2})
    finally:
        reader.stop()


def test_after_a_quiet_while_nothing_is_read_until_the_next_c_get(
    engine: Engine, readings: Readings, clock: list[float]
) -> None:
    reader = HeldSyntaxesReader(engine, refresh_seconds=0.01, quiet_seconds=60)
    try:
        add(engine, "CT", ExplicitVRLittleEndian, 1)
        reader.current()
        refresher = reader.refresher
        assert refresher is not None
        clock[0] += 60
        refresher.join(timeout=30)
        assert not refresher.is_alive() and reader.refresher is None
        count = readings.count
        add(engine, "CT", JPEGLSLossless, 2)
        assert reader.current().overall == {ExplicitVRLittleEndian: 1, JPEGLSLossless: 2}  # read at once again
        assert readings.count >= count + 1 and reader.refresher is not None
    finally:
        reader.stop()


def test_an_index_that_cannot_be_read_leaves_the_last_reading_said_once_and_when_it_reads_again(
    engine: Engine, readings: Readings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=retrieve.LOGGER.name)
    reader = HeldSyntaxesReader(engine, refresh_seconds=0.01)
    try:
        add(engine, "CT", JPEGLSLossless, 3)
        assert reader.current().overall == {JPEGLSLossless: 3}
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE instance RENAME TO instance_gone"))
        readings.wait_for(readings.count + 3)
        assert reader.current().overall == {JPEGLSLossless: 3}
        assert caplog.text.count("stored syntaxes not read, the last reading stands") == 1
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE instance_gone RENAME TO instance"))
        add(engine, "CT", ExplicitVRLittleEndian, 4)
        assert readings.seen_by(reader, {JPEGLSLossless: 3, ExplicitVRLittleEndian: 4})
        assert caplog.text.count("stored syntaxes read again") == 1
    finally:
        reader.stop()


def test_a_reading_the_same_as_the_last_keeps_the_last(engine: Engine) -> None:
    """What is made from a reading (the C-GET contexts) is then made once while nothing changes."""
    reader = HeldSyntaxesReader(engine)
    first = HeldSyntaxes({CT: {JPEGLSLossless: 3}}, {JPEGLSLossless: 3})
    reader.take(first)
    reader.take(HeldSyntaxes({CT: {JPEGLSLossless: 3}}, {JPEGLSLossless: 3}))
    assert reader.held is first
    reader.take(HeldSyntaxes({CT: {JPEGLSLossless: 4}}, {JPEGLSLossless: 4}))
    assert reader.held is not first and reader.held.overall == {JPEGLSLossless: 4}
    reader.take(None)  # the index could not be read
    assert reader.held.overall == {JPEGLSLossless: 4}
