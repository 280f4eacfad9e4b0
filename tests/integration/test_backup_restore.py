"""The backup with real borg and borgmatic on a local repository (B1, B2): a backup taken while
images are being received stays consistent, a restore onto an empty box gives byte-identical files
and an index answering the same search, studies come back through the normal ingest, the live
index is never overwritten by mistake, and the drill catches an altered file, a missing one and a
damaged repository."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from backup_rig import box, ingest_of, receive_study, with_tools_on_path
from sqlalchemy import select

from appliance.archive.search import Query, find
from appliance.archive.storage import sha256_of_file
from appliance.backup.drill import run_drill
from appliance.backup.history import drills, runs
from appliance.backup.snapshot import staging_directory
from appliance.cli import main
from appliance.config import load_config
from appliance.db import create_index_engine
from appliance.db.schema import instance

STUDY_KEYS = {"PatientID": "", "PatientName": "", "StudyInstanceUID": "", "StudyDate": "",
              "NumberOfStudyRelatedInstances": "", "ModalitiesInStudy": "", "AccessionNumber": ""}  # fmt: skip


@pytest.fixture(autouse=True)
def tools(monkeypatch: pytest.MonkeyPatch) -> None:
    with_tools_on_path(monkeypatch)


def backup(config_path: Path, *arguments: str) -> int:
    return main(["backup", *arguments, "--config", str(config_path)])


def studies_answer(index_file: Path) -> list[dict[str, object]]:
    """The domain's C-FIND answer at STUDY level for everything, without the internal keys."""
    engine = create_index_engine(f"sqlite:///{index_file}")
    try:
        rows = find(engine, Query("STUDY", dict(STUDY_KEYS)), 10_000)
    finally:
        engine.dispose()
    return sorted(({key: row[key] for key in STUDY_KEYS} for row in rows), key=lambda row: str(row["StudyInstanceUID"]))


def indexed_files(index_file: Path) -> dict[str, str]:
    engine = create_index_engine(f"sqlite:///{index_file}")
    try:
        with engine.connect() as connection:
            return dict(connection.execute(select(instance.c.path, instance.c.sha256)).all())
    finally:
        engine.dispose()


def test_a_backup_during_reception_restores_identical_onto_an_empty_box(tmp_path: Path) -> None:
    repository = tmp_path / "repository"
    first = box(tmp_path / "first", {"repository": str(repository)})
    config = load_config(first)
    ingest = ingest_of(config)
    for number in range(3):
        receive_study(ingest, 8, patient_number=number, seed=number)
    assert backup(first, "init") == 0
    stop = threading.Event()
    received: list[str] = []

    def keep_receiving() -> None:
        number = 10
        while not stop.is_set():
            received.append(receive_study(ingest, 2, patient_number=number, seed=number))
            number += 1

    receiver = threading.Thread(target=keep_receiving)
    receiver.start()
    try:
        assert backup(first, "run") == 0
    finally:
        stop.set()
        receiver.join(timeout=60)
    assert received, "images were being received during the backup"
    [record] = runs(config.backup.state_directory)
    assert record.succeeded and record.target == "local" and record.files > 0 and record.deduplicated_bytes > 0
    snapshot_index = staging_directory(config) / "index.sqlite"
    saved = indexed_files(snapshot_index)
    assert len(saved) >= 24

    # A new box: same passphrase and repository, an empty data directory.
    second = box(tmp_path / "second", {"repository": str(repository)})
    shutil.copy(tmp_path / "first" / "etc" / "backup" / "passphrase", tmp_path / "second" / "etc" / "backup")
    assert backup(second, "restore", "box") == 1  # refused: this box already has an (empty) index
    assert backup(second, "restore", "box", "--force") == 0
    restored = load_config(second)
    restored_index = Path(restored.database_url.removeprefix("sqlite:///"))
    for path, digest in saved.items():  # every file the snapshot names, byte for byte
        assert sha256_of_file(restored.storage.archive_directory / path) == digest
    assert studies_answer(restored_index) == studies_answer(snapshot_index)
    assert len(studies_answer(restored_index)) >= 3
    assert restored.audit.database.exists() or not config.audit.database.exists()


def test_studies_come_back_through_the_ingest_and_the_live_index_is_protected(tmp_path: Path) -> None:
    repository = tmp_path / "repository"
    first = box(tmp_path / "first", {"repository": str(repository)})
    config = load_config(first)
    ingest = ingest_of(config)
    wanted = receive_study(ingest, 5, patient_number=1, seed=1)
    receive_study(ingest, 4, patient_number=2, seed=2)
    assert backup(first, "init") == 0 and backup(first, "run") == 0

    live_index = Path(config.database_url.removeprefix("sqlite:///"))
    before = live_index.read_bytes()
    assert backup(first, "restore", "index", "--to", str(live_index)) == 1
    assert live_index.read_bytes() == before
    elsewhere = tmp_path / "copy" / "index.sqlite"
    assert backup(first, "restore", "index", "--to", str(elsewhere)) == 0
    assert studies_answer(elsewhere) == studies_answer(live_index)

    second = box(tmp_path / "second", {"repository": str(repository)})
    assert backup(second, "restore", "studies", "--study", wanted) == 0
    restored = load_config(second)
    restored_index = Path(restored.database_url.removeprefix("sqlite:///"))
    [answer] = studies_answer(restored_index)
    assert answer["StudyInstanceUID"] == wanted and answer["NumberOfStudyRelatedInstances"] == 5
    assert indexed_files(restored_index) == {
        path: digest for path, digest in indexed_files(live_index).items() if path in indexed_files(restored_index)
    }
    # Again: the instances are known, so they are duplicates (identical), nothing is written twice.
    assert backup(second, "restore", "studies", "--patient-id", answer["PatientID"]) == 0  # type: ignore[arg-type]
    assert len(indexed_files(restored_index)) == 5


def test_the_drill_catches_an_altered_file_a_missing_file_and_a_damaged_repository(tmp_path: Path) -> None:
    repository = tmp_path / "repository"
    path = box(tmp_path / "box", {"repository": str(repository)})
    config = load_config(path)
    ingest = ingest_of(config)
    for number in range(4):
        receive_study(ingest, 3, patient_number=number, seed=number)
    assert backup(path, "init") == 0 and backup(path, "run") == 0
    assert backup(path, "drill") == 0
    assert drills(config.backup.state_directory)[-1].succeeded
    assert drills(config.backup.state_directory)[-1].files == 12

    # Bit rot on the store before the next backup, and a file gone: the backup carries both.
    files = sorted(config.storage.archive_directory.rglob("*.dcm"))
    altered, missing = files[0], files[-1]
    altered.write_bytes(altered.read_bytes()[:-8] + b"\x00" * 8)
    missing.unlink()
    assert backup(path, "run") == 0
    record = run_drill(config, sample_size=100)
    assert not record.succeeded
    assert [line.split(": ")[1] for line in record.altered] == [
        str(altered.relative_to(config.storage.archive_directory))
    ]
    assert [line.split(": ")[1] for line in record.missing] == [
        str(missing.relative_to(config.storage.archive_directory))
    ]
    assert "1 fichier(s) manquant(s)" in record.reason and "1 fichier(s) altéré(s)" in record.reason

    # A damaged repository segment: borg refuses to extract it, or borg check names it.
    segments = sorted((repository / "data").rglob("[0-9]*"), key=lambda segment: segment.stat().st_size)
    biggest = segments[-1]
    data = bytearray(biggest.read_bytes())
    for offset in range(len(data) // 3, len(data) // 3 + 64):
        data[offset] ^= 0xFF
    biggest.write_bytes(bytes(data))
    damaged = run_drill(config, sample_size=100)
    assert not damaged.succeeded
    assert damaged.reason and damaged.detail
