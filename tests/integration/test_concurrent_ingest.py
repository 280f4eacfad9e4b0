"""Ingest safe across processes (A3): two processes (the DICOM archive and, later, STOW-RS) store the
same instance at the same moment, many times. Every store is answered success, exactly one copy is
archived and indexed, other bytes under a known UID go to quarantine, and no file is left orphan or
overwritten."""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier
from pathlib import Path
from queue import Queue

from datagen import PATIENTS, encoded, make_instance
from sqlalchemy import func, select

from appliance.archive.index import Index
from appliance.archive.ingest import IncomingObject, Ingest, StoreOutcome
from appliance.archive.integrity import verify
from appliance.archive.storage import FileStore
from appliance.db import create_index_engine, upgrade_schema
from appliance.db.schema import instance, quarantined_duplicate

ROUNDS = 60
OTHER_BYTES_EVERY = 4  # every 4th round the second process sends other bytes under the same UID


def index_url(data: Path) -> str:
    return f"sqlite:///{data / 'index' / 'appliance.sqlite'}"


def payloads() -> list[list[tuple[str, bytes]]]:
    """What each of the two writers sends, round by round: the same instances, and every few rounds
    other bytes under the same SOP Instance UID from the second writer."""
    first, second = [], []
    for number in range(ROUNDS):
        dataset = make_instance("CR", PATIENTS[number % len(PATIENTS)], seed=number)
        uid = str(dataset.SOPInstanceUID)
        first.append((uid, encoded(dataset)))
        if number % OTHER_BYTES_EVERY == 0:
            dataset.InstitutionName = "Autre contenu, même UID"
        second.append((uid, encoded(dataset)))
    return [first, second]


def writer_process(
    data: Path, writer: int, objects: list[tuple[str, bytes]], barrier: Barrier, outcomes: Queue[tuple[int, int, str]]
) -> None:
    engine = create_index_engine(index_url(data))
    ingest = Ingest(FileStore(data, 0), Index(engine))
    for number, (uid, payload) in enumerate(objects):
        barrier.wait(timeout=60)
        result = ingest.store(IncomingObject(payload, uid, "1.2.840.10008.5.1.4.1.1.1", f"WRITER{writer}"))
        outcomes.put((number, writer, result.outcome.value))
    engine.dispose()


def test_two_processes_storing_the_same_instance_at_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    engine = create_index_engine(index_url(data))
    upgrade_schema(engine)
    engine.dispose()
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    outcomes: Queue[tuple[int, int, str]] = context.Queue()
    objects = payloads()
    writers = [
        context.Process(target=writer_process, args=(data, writer, objects[writer], barrier, outcomes))
        for writer in (0, 1)
    ]
    for process in writers:
        process.start()
    results = [outcomes.get(timeout=300) for _ in range(2 * ROUNDS)]
    for process in writers:
        process.join(timeout=60)
        assert process.exitcode == 0
    by_round: dict[int, list[str]] = {}
    for number, _writer, outcome in results:
        by_round.setdefault(number, []).append(outcome)
    for number, outcomes_of_round in sorted(by_round.items()):
        other = number % OTHER_BYTES_EVERY == 0
        duplicate = StoreOutcome.DUPLICATE_QUARANTINED if other else StoreOutcome.DUPLICATE_IDENTICAL
        assert sorted(outcomes_of_round) == sorted([StoreOutcome.STORED.value, duplicate.value]), number
    engine = create_index_engine(index_url(data))
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(instance)) == ROUNDS
        quarantined = connection.scalar(select(func.count()).select_from(quarantined_duplicate))
    assert quarantined == len(range(0, ROUNDS, OTHER_BYTES_EVERY))
    report = verify(engine, FileStore(data, 0))
    engine.dispose()
    assert report.checked == ROUNDS and report.intact, (report.missing, report.altered, report.orphans)
    assert len(list((data / "archive").rglob("*.dcm"))) == ROUNDS
    assert list((data / "incoming").iterdir()) == []
