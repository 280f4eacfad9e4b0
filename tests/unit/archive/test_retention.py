"""Retention (R2) with an injected date: the studies past their date are listed, never deleted by
themselves; a frozen study is never listed; a purge needs a reason, removes files and rows, and a
crash between its steps is completed at restart with exactly one announcement."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from datagen import PATIENTS, Patient, encoded, make_instance
from sqlalchemy import Engine, func, select

from appliance.archive import retention, tiers
from appliance.archive.deferred import FolderStore
from appliance.archive.index import Index
from appliance.archive.ingest import IncomingObject, Ingest
from appliance.archive.retention import Policy, RetainedStudy
from appliance.archive.search import Query, find
from appliance.archive.storage import FileStore
from appliance.db.schema import instance, series, study

FIVE_YEARS = Policy(years=5, until_age=28)
MINOR = Patient("IPP0099", "PETIT^Léo", "20100301", "M", "ISO_IR 192")


def add_study(files: FileStore, engine: Engine, study_date: str, patient: Patient = PATIENTS[1]) -> str:
    first = make_instance("CR", patient, study_date=study_date)
    for number in (1, 2):
        dataset = make_instance(
            "CR", patient, study_uid=first.StudyInstanceUID, series_uid=first.SeriesInstanceUID,
            instance_number=number, study_date=study_date,
        )  # fmt: skip
        Ingest(files, Index(engine)).store(
            IncomingObject(encoded(dataset), dataset.SOPInstanceUID, dataset.SOPClassUID, "T")
        )
    return str(first.StudyInstanceUID)


def listed(engine: Engine, today: date, policy: Policy = FIVE_YEARS) -> list[str]:
    return [found.study_instance_uid for found in retention.expired_studies(engine, policy, today)]


def counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as connection:
        return tuple(
            int(connection.scalar(select(func.count()).select_from(table)) or 0) for table in (study, series, instance)
        )  # type: ignore[return-value]


def test_a_clock_moved_forward_lists_the_expired_studies_and_deletes_nothing(engine: Engine, tmp_path: Path) -> None:
    files = FileStore(tmp_path / "data", 0)
    old = add_study(files, engine, "20190510")
    recent = add_study(files, engine, "20240102")
    assert listed(engine, date(2024, 5, 9)) == []
    assert listed(engine, date(2024, 5, 10)) == [old]  # five years to the day
    assert listed(engine, date(2029, 1, 2)) == [old, recent]
    assert listed(engine, date(2029, 1, 2), Policy(years=20, until_age=28)) == []  # health establishment
    assert counts(engine) == (2, 2, 4)
    assert len(list(files.archive_directory.rglob("*.dcm"))) == 4


def test_a_minor_is_kept_until_the_28th_birthday(engine: Engine, tmp_path: Path) -> None:
    files = FileStore(tmp_path / "data", 0)
    child = add_study(files, engine, "20150101", MINOR)
    assert listed(engine, date(2030, 1, 1)) == []  # 15 years on, the patient is 19
    assert listed(engine, date(2038, 2, 28)) == []
    assert listed(engine, date(2038, 3, 1)) == [child]
    assert listed(engine, date(2030, 1, 1), Policy(years=5, until_age=0)) == [child]  # the rule turned off


def test_a_frozen_study_is_never_listed_nor_purged(engine: Engine, tmp_path: Path) -> None:
    files = FileStore(tmp_path / "data", 0)
    uid = add_study(files, engine, "20150101")
    retention.freeze(engine, uid, "admin", "Contentieux en cours")
    assert listed(engine, date(2040, 1, 1)) == []
    assert [found.frozen_reason for found in retention.frozen_studies(engine, FIVE_YEARS)] == ["Contentieux en cours"]
    with pytest.raises(retention.Frozen):
        retention.purge(engine, files, None, FIVE_YEARS, uid, "admin", "fin", date(2040, 1, 1), never_announced)
    assert counts(engine) == (1, 1, 2)
    retention.unfreeze(engine, uid)
    assert listed(engine, date(2040, 1, 1)) == [uid]
    with pytest.raises(retention.ReasonMissing):
        retention.freeze(engine, uid, "admin", "  ")


def never_announced(found: RetainedStudy, by: str, reason: str) -> None:
    raise AssertionError("nothing may be announced for a refused purge")


def test_a_purge_needs_a_reason_and_the_date_then_removes_files_and_rows(engine: Engine, tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "nas")
    files = FileStore(tmp_path / "data", 0, store)
    uid = add_study(files, engine, "20150101")
    kept = add_study(files, engine, "20250101")
    tiers.move_due(engine, files, store, 3, date(2021, 1, 1))  # the old one is in the deferred tier
    announced: list[tuple[str, str, str]] = []

    def announce(found: RetainedStudy, by: str, reason: str) -> None:
        announced.append((found.study_instance_uid, by, reason))

    with pytest.raises(retention.ReasonMissing):
        retention.purge(engine, files, store, FIVE_YEARS, uid, "admin", "", date(2026, 1, 1), never_announced)
    with pytest.raises(retention.NotExpired):
        retention.purge(engine, files, store, FIVE_YEARS, kept, "admin", "fin", date(2026, 1, 1), never_announced)
    retention.purge(engine, files, store, FIVE_YEARS, uid, "admin", "Durée échue", date(2026, 1, 1), announce)

    assert announced == [(uid, "admin", "Durée échue")]
    assert counts(engine) == (1, 1, 2)
    assert not list((tmp_path / "nas").rglob("*.dcm"))
    assert len(list(files.archive_directory.rglob("*.dcm"))) == 2
    assert find(engine, Query("STUDY", {"StudyInstanceUID": uid}), 10) == []


@pytest.mark.parametrize("crash_in", ["announce", "remove_files", "delete_rows"])
def test_a_crash_mid_purge_hides_the_study_and_the_restart_completes_it(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_in: str
) -> None:
    files = FileStore(tmp_path / "data", 0)
    uid = add_study(files, engine, "20150101")
    announced: list[str] = []

    def announce(found: RetainedStudy, by: str, reason: str) -> None:
        if crash_in == "announce":
            raise RuntimeError("power cut before the audit event")
        announced.append(found.study_instance_uid)

    original = getattr(retention, crash_in, None)
    if crash_in != "announce":
        monkeypatch.setattr(retention, crash_in, lambda *arguments: (_ for _ in ()).throw(RuntimeError("power cut")))
    with pytest.raises(RuntimeError):
        retention.purge(engine, files, None, FIVE_YEARS, uid, "admin", "Durée échue", date(2026, 1, 1), announce)
    assert find(engine, Query("STUDY", {"PatientID": ""}), 10) == []  # nothing half-visible
    assert listed(engine, date(2026, 1, 1)) == []
    if original is not None:
        monkeypatch.setattr(retention, crash_in, original)

    def restart_announce(found: RetainedStudy, by: str, reason: str) -> None:
        assert (by, reason) == ("admin", "Durée échue")
        announced.append(found.study_instance_uid)

    assert retention.complete_interrupted(engine, files, None, FIVE_YEARS, restart_announce) == [uid]
    assert announced == [uid]  # exactly once, before or after the crash
    assert counts(engine) == (0, 0, 0)
    assert not list(files.archive_directory.rglob("*.dcm"))
    assert retention.complete_interrupted(engine, files, None, FIVE_YEARS, restart_announce) == []
