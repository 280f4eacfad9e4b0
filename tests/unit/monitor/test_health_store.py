"""The stored health: a change of severity is recorded once, a subject no longer reported is back to
normal, and the measures come back in time order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from appliance.monitor import Finding, Measure, Reading, Severity, store

START = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def raid(severity: Severity, message: str = "") -> Reading:
    return Reading([Finding("raid", "md1", severity, message or severity.value, "detail")])


def test_only_changes_of_severity_are_changes(engine: Engine) -> None:
    first = store.record(engine, "raid", raid(Severity.OK), START)
    again = store.record(engine, "raid", raid(Severity.OK, "toujours bien"), START + timedelta(minutes=1))
    degraded = store.record(engine, "raid", raid(Severity.CRITICAL, "dégradé"), START + timedelta(minutes=2))
    assert [(change.previous, change.severity) for change in first] == [(None, Severity.OK)]
    assert again == []
    assert [(change.previous, change.severity) for change in degraded] == [(Severity.OK, Severity.CRITICAL)]
    [state] = store.current(engine)
    assert (state.severity, state.message, state.since) == (Severity.CRITICAL, "dégradé", START + timedelta(minutes=2))
    assert state.checked_at == START + timedelta(minutes=2)


def test_a_subject_no_longer_reported_is_a_recovery_when_it_was_a_problem(engine: Engine) -> None:
    store.record(engine, "raid", raid(Severity.WARNING), START)
    [recovery] = store.record(engine, "raid", Reading([]), START + timedelta(minutes=1))
    assert recovery.is_recovery and recovery.message == store.BACK_TO_NORMAL
    assert store.current(engine) == []
    assert [change.id for change in store.unalerted(engine)] == [1, 2]
    store.mark_alerted(engine, [1, 2], START + timedelta(minutes=2))
    assert store.unalerted(engine) == []
    assert [change.severity for change in store.changes(engine, source="raid")] == [Severity.OK, Severity.WARNING]


def test_measures_come_back_oldest_first(engine: Engine) -> None:
    for minutes, value in [(0, 10.0), (5, 12.5), (10, 11.0)]:
        store.add_measures(engine, [Measure("ups.charge", value)], START + timedelta(minutes=minutes))
    assert [value for _, value in store.measures(engine, "ups.charge", START + timedelta(minutes=1))] == [12.5, 11.0]
    assert store.prune_measures(engine, START + timedelta(minutes=6)) == 2
