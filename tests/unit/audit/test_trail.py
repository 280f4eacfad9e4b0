"""The audit trail on a real SQLite file: append-only, the hash chain and what `verify` detects
(edited, deleted, inserted, reordered records), the retention purge, search, concurrent writers in
several processes, and recording that never raises."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance.audit.chain import canonical, link
from appliance.audit.events import (
    Action,
    AuditEvent,
    EventId,
    Outcome,
    ae,
    application,
    patient,
    patient_number,
    person,
    study,
)
from appliance.audit.trail import AuditFilter, AuditTrail, retention_cutoff


def viewed(number: int, user: str = "dmartin", patient_id: str = "P000123") -> AuditEvent:
    return AuditEvent(
        EventId.INSTANCES_ACCESSED,
        Action.READ,
        Outcome.SUCCESS,
        (person(user, "192.168.1.23", "MARTIN^Paul"), application("appliance-web", "pacs.cabinet.lan")),
        (patient(patient_number(patient_id, "1.2.250.1.999.1.1"), "DUPONT^MARIE"), study(f"1.2.3.{number}", "A1")),
    )


@pytest.fixture()
def trail(tmp_path: Path) -> AuditTrail:
    opened = AuditTrail(tmp_path / "audit" / "audit.sqlite")
    for number in range(1, 6):
        opened.record(viewed(number))
    return opened


def tamper(trail: AuditTrail, *statements: tuple[str, tuple[object, ...]]) -> None:
    """Change the file as an intruder with write access would: triggers dropped first."""
    trail.close()
    connection = sqlite3.connect(trail.path)
    for table in ("audit_record", "audit_patient"):
        for operation in ("update", "delete"):
            connection.execute(f"DROP TRIGGER IF EXISTS {table}_no_{operation}")
    for sql, parameters in statements:
        connection.execute(sql, parameters)
    connection.commit()
    connection.close()


def document(trail: AuditTrail, seq: int) -> dict[str, object]:
    with sqlite3.connect(trail.path) as connection:
        (text,) = connection.execute("SELECT document FROM audit_record WHERE seq = ?", (seq,)).fetchone()
    loaded: dict[str, object] = json.loads(text)
    return loaded


def test_the_file_is_private_and_the_chain_verifies(trail: AuditTrail) -> None:
    assert stat.S_IMODE(trail.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(trail.path.parent.stat().st_mode) == 0o700
    report = trail.verify()
    assert (report.intact, report.checked, report.first_seq, report.last_seq) == (True, 5, 1, 5)
    assert report.last_hash == trail.tail()[1]


def test_records_cannot_be_updated_or_deleted(trail: AuditTrail) -> None:
    connection = sqlite3.connect(trail.path)
    for sql in ("UPDATE audit_record SET user_id = 'x'", "DELETE FROM audit_record WHERE seq = 2",
                "DELETE FROM audit_patient"):  # fmt: skip
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            connection.execute(sql)
    connection.close()


def test_an_edited_record_is_named(trail: AuditTrail) -> None:
    edited = document(trail, 3)
    edited["participants"][0]["id"] = "someone-else"  # type: ignore[index]
    tamper(trail, ("UPDATE audit_record SET document = ? WHERE seq = 3", (canonical(edited).decode(),)))
    assert [(found.seq, "edited" in found.problem) for found in AuditTrail(trail.path).verify().breaks] == [(3, True)]


def test_an_edited_record_with_its_hash_recomputed_breaks_the_next_link(trail: AuditTrail) -> None:
    edited = document(trail, 3)
    edited["outcome"] = 4
    text = canonical(edited)
    with sqlite3.connect(trail.path) as connection:
        (previous,) = connection.execute("SELECT previous_hash FROM audit_record WHERE seq = 3").fetchone()
    tamper(trail, ("UPDATE audit_record SET document = ?, outcome = 4, hash = ? WHERE seq = 3",
                   (text.decode(), link(previous, text))))  # fmt: skip
    (found,) = AuditTrail(trail.path).verify().breaks
    assert found.seq == 4 and "does not follow" in found.problem


def test_a_searchable_column_changed_alone_is_detected(trail: AuditTrail) -> None:
    tamper(trail, ("UPDATE audit_record SET user_id = 'nobody' WHERE seq = 2", ()))
    (found,) = AuditTrail(trail.path).verify().breaks
    assert found.seq == 2 and "searchable columns" in found.problem


def test_a_deleted_record_is_detected(trail: AuditTrail) -> None:
    tamper(trail, ("DELETE FROM audit_record WHERE seq = 3", ()), ("DELETE FROM audit_patient WHERE seq = 3", ()))
    (found,) = AuditTrail(trail.path).verify().breaks
    assert found.seq == 4 and "record(s) 3..3 missing" in found.problem


def test_the_oldest_records_deleted_without_a_purge_are_detected(trail: AuditTrail) -> None:
    tamper(trail, ("DELETE FROM audit_record WHERE seq <= 2", ()), ("DELETE FROM audit_patient WHERE seq <= 2", ()))
    (found,) = AuditTrail(trail.path).verify().breaks
    assert found.seq == 3 and "does not follow" in found.problem


def test_an_inserted_record_is_detected(trail: AuditTrail) -> None:
    """A forged record slipped in after seq 2 (the later ones renumbered), with a valid hash of its own."""
    forged = document(trail, 2)
    forged["seq"] = 3
    forged["participants"][0]["id"] = "alibi"  # type: ignore[index]
    text = canonical(forged)
    with sqlite3.connect(trail.path) as connection:
        (hash_two,) = connection.execute("SELECT hash FROM audit_record WHERE seq = 2").fetchone()
    columns = "seq, recorded_at, event_at, event_id, action, outcome, event_type, user_id, address, patient_ids"
    tamper(
        trail,
        ("UPDATE audit_record SET seq = seq + 10 WHERE seq >= 3", ()),
        ("UPDATE audit_record SET seq = seq - 9 WHERE seq >= 13", ()),
        (f"INSERT INTO audit_record ({columns}, study_uids, document, previous_hash, hash) SELECT 3, recorded_at,"
         " event_at, event_id, action, outcome, event_type, 'alibi', address, patient_ids, study_uids, ?, ?, ?"
         " FROM audit_record WHERE seq = 2", (text.decode(), hash_two, link(hash_two, text))),
    )  # fmt: skip
    breaks = AuditTrail(trail.path).verify().breaks
    assert 3 not in [found.seq for found in breaks]  # the forged one is well made...
    assert breaks[0].seq == 4 and "does not follow" in breaks[0].problem  # ...but the next one no longer follows


def test_reordered_records_are_detected(trail: AuditTrail) -> None:
    tamper(
        trail,
        ("UPDATE audit_record SET seq = 100 WHERE seq = 2", ()),
        ("UPDATE audit_record SET seq = 2 WHERE seq = 3", ()),
        ("UPDATE audit_record SET seq = 3 WHERE seq = 100", ()),
    )
    assert {found.seq for found in AuditTrail(trail.path).verify().breaks} >= {2, 3}


def test_a_purge_keeps_the_chain_verifiable(trail: AuditTrail) -> None:
    report = trail.purge(datetime.now(UTC) + timedelta(seconds=1), person("root", "pacs"), application("cli"))
    assert (report.removed, report.purged_through) == (5, 5)
    trail.record(viewed(6))
    verified = trail.verify()
    assert (verified.intact, verified.first_seq, verified.last_seq) == (True, 6, 7)
    (purge,) = trail.search(AuditFilter(event=EventId.AUDIT_LOG_USED))
    assert purge.event.action is Action.DELETE
    assert dict(purge.event.objects[0].details)["purged-through"] == "5"
    assert trail.count(AuditFilter(patient="P000123")) == 1


def test_a_purge_with_nothing_old_enough_removes_nothing(trail: AuditTrail) -> None:
    report = trail.purge(datetime.now(UTC) - timedelta(days=1), person("root", "pacs"))
    assert report.removed == 0 and trail.count() == 5


def test_search_by_patient_user_event_and_date(trail: AuditTrail) -> None:
    trail.record(viewed(6, user="mlefevre", patient_id="P000999"))
    trail.record(AuditEvent(EventId.QUERY, Action.EXECUTE, Outcome.SUCCESS, (ae("FINDSCU", "10.0.0.2", True),)))
    assert [record.seq for record in trail.search(AuditFilter(patient="P000999"))] == [6]
    assert [record.seq for record in trail.search(AuditFilter(user="dmartin"), limit=2)] == [5, 4]
    assert [record.seq for record in trail.search(AuditFilter(user="dmartin"), limit=2, older_than=4)] == [3, 2]
    assert [record.seq for record in trail.search(AuditFilter(event=EventId.QUERY))] == [7]
    now = datetime.now(UTC)
    assert trail.count(AuditFilter(since=now - timedelta(minutes=1), until=now + timedelta(minutes=1))) == 7
    assert trail.count(AuditFilter(until=now - timedelta(minutes=1))) == 0
    (found,) = trail.search(AuditFilter(patient="P000999"))
    assert found.event.objects[0].object_id == "P000999^^^&1.2.250.1.999.1.1&ISO"


def test_recording_never_raises_and_keeps_the_event_for_later(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the folder should be")
    trail = AuditTrail(blocked / "audit.sqlite")
    trail.record(viewed(1))
    assert len(trail.pending) == 1
    blocked.unlink()
    trail.record(viewed(2))
    assert not trail.pending and trail.count() == 2 and trail.verify().intact


def test_a_background_writer_appends_in_order_and_close_writes_everything(tmp_path: Path) -> None:
    trail = AuditTrail(tmp_path / "audit.sqlite", background=True)
    for number in range(300):
        trail.record(viewed(number, user=f"user{number}"))
    trail.close()
    reopened = AuditTrail(trail.path)
    assert reopened.verify().intact
    assert [record.event.requestor.user_id for record in reopened.records()][:3] == ["user0", "user1", "user2"]  # type: ignore[union-attr]
    assert reopened.count() == 300


def test_retention_cutoff_counts_calendar_months() -> None:
    assert retention_cutoff(datetime(2026, 3, 31, 12, tzinfo=UTC), 12) == datetime(2025, 3, 31, 12, tzinfo=UTC)
    assert retention_cutoff(datetime(2026, 3, 31, tzinfo=UTC), 1) == datetime(2026, 2, 28, tzinfo=UTC)
    assert retention_cutoff(datetime(2026, 1, 15, tzinfo=UTC), 6) == datetime(2025, 7, 15, tzinfo=UTC)


def append_many(path: str, writer: int, count: int) -> None:
    trail = AuditTrail(Path(path))
    for number in range(count):
        trail.record(viewed(number, user=f"writer{writer}"))
    trail.close()


def test_several_processes_appending_at_once_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    AuditTrail(path).close()
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=append_many, args=(str(path), writer, 200)) for writer in range(3)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(timeout=120)
        assert process.exitcode == 0
    trail = AuditTrail(path)
    report = trail.verify()
    assert (report.intact, report.checked) == (True, 600)
    assert {trail.count(AuditFilter(user=f"writer{writer}")) for writer in range(3)} == {200}


def test_a_record_is_found_by_its_seq(trail: AuditTrail) -> None:
    found = trail.find(3)
    assert found is not None and found.seq == 3 and found.event.objects[1].object_id == "1.2.3.3"
    assert found.previous_hash == trail.find(2).hash  # type: ignore[union-attr]
    assert trail.find(99) is None


def test_verify_reports_its_progress_and_stops_when_told(trail: AuditTrail) -> None:
    for number in range(6, 2_501):
        trail.record(viewed(number))
    seen: list[tuple[int, int]] = []
    report = trail.verify(lambda step, done, total: seen.append((done, total)))
    assert report.intact and report.checked == 2_500
    assert seen == [(0, 2_500), (1_000, 2_500), (2_000, 2_500), (2_500, 2_500)]

    class Enough(Exception):
        pass

    def stop(step: str, done: int, total: int) -> None:
        if done:
            raise Enough

    with pytest.raises(Enough):
        trail.verify(stop)
