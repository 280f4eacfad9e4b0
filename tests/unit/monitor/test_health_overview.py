"""The dashboard's reading of the stored health: the tiles in order with each source's worst state, a
silent monitor, a long history of measures thinned to one value per moment, the UPS's last outage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from appliance.monitor import Finding, Measure, Reading, Severity, overview, store, trends

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_each_source_shows_its_worst_and_oldest_problem(engine: Engine) -> None:
    store.record(
        engine, "smart", Reading([Finding("smart", "sda", Severity.WARNING, "chaud")]), NOW - timedelta(hours=2)
    )
    disks = [
        Finding("smart", "sda", Severity.WARNING, "chaud"),
        Finding("smart", "sdb", Severity.WARNING, "chaud aussi"),
        Finding("smart", "sdc", Severity.OK, "bien"),
    ]
    store.record(engine, "smart", Reading(disks), NOW)
    store.record(engine, "events", Reading([Finding("events", "mdadm", Severity.CRITICAL, "Fail")]), NOW)
    store.record(engine, "newsource", Reading([Finding("newsource", "x", Severity.OK, "bien")]), NOW)
    seen = overview.overview(store.current(engine), NOW, 60)
    assert [source.source for source in seen.sources] == [*overview.SOURCES, "events", "newsource"]
    smart = next(source for source in seen.sources if source.source == "smart")
    assert smart.worst is not None and smart.worst.subject == "sda"  # the older of two warnings
    assert smart.severity is Severity.WARNING and seen.severity is Severity.CRITICAL
    backup = next(source for source in seen.sources if source.source == "backup")
    assert not backup.recorded and backup.severity is Severity.ABSENT
    assert not seen.monitor.stale and seen.monitor.last_checked == NOW


def test_a_monitor_silent_for_a_few_rounds_is_stale(engine: Engine) -> None:
    assert overview.overview([], NOW, 60).monitor.stale  # never wrote
    store.record(engine, "raid", Reading([Finding("raid", "md0", Severity.OK, "bien")]), NOW - timedelta(minutes=4))
    assert not overview.overview(store.current(engine), NOW, 60).monitor.stale
    late = overview.overview(store.current(engine), NOW + timedelta(minutes=2), 60)
    assert late.monitor.stale and late.severity is Severity.WARNING
    assert overview.stale_after(10) == overview.STALE_AT_LEAST  # never less than three minutes


def test_a_long_history_is_read_one_value_per_moment(engine: Engine) -> None:
    store.add_measures(engine, [Measure("disk.data.used_bytes", 10.0)], NOW - timedelta(days=10))
    for minutes in range(0, 3 * 24 * 60, 10):
        store.add_measures(engine, [Measure("disk.data.used_bytes", float(minutes))], NOW - timedelta(minutes=minutes))
    moments = [NOW - timedelta(days=day) for day in (12, 10, 5, 2, 1, 0)]
    values = trends.sampled(engine, "disk.data.used_bytes", moments, reach=timedelta(days=1))
    assert values == [
        (NOW - timedelta(days=10), 10.0),
        (NOW - timedelta(days=2), 2880.0),
        (NOW - timedelta(days=1), 1440.0),
        (NOW, 0.0),
    ]  # nothing before the first measure, nothing where the last one is over a day old
    assert trends.latest(engine, "disk.data.used_bytes") == (NOW, 0.0)
    assert trends.latest(engine, "ups.eaton.charge") is None


def test_the_last_outage_with_its_charge(engine: Engine) -> None:
    assert trends.last_outage(engine, NOW) is None

    def ups(severity: Severity, at: datetime) -> None:
        store.record(engine, "ups", Reading([Finding("ups", "eaton", severity, severity.value)]), at)

    first = NOW - timedelta(days=3)
    ups(Severity.OK, first - timedelta(hours=1))
    ups(Severity.WARNING, first)
    ups(Severity.OK, first + timedelta(minutes=5))
    cut = NOW - timedelta(hours=2)
    ups(Severity.WARNING, cut)
    ups(Severity.CRITICAL, cut + timedelta(minutes=20))  # low battery: the same outage
    ups(Severity.OK, cut + timedelta(minutes=30))
    for minute in range(-20, 60, 5):
        store.add_measures(
            engine, [Measure("ups.eaton.charge", 100.0 - max(minute, 0))], cut + timedelta(minutes=minute)
        )
    outage = trends.last_outage(engine, NOW)
    assert outage is not None and (outage.subject, outage.started) == ("eaton", cut)
    assert outage.ended == cut + timedelta(minutes=30)
    assert outage.charge[0][0] == cut - timedelta(minutes=10) and outage.charge[-1][0] == cut + timedelta(minutes=40)
    assert min(value for _, value in outage.charge) == 60.0
    ups(Severity.WARNING, NOW - timedelta(minutes=1))
    ongoing = trends.last_outage(engine, NOW)
    assert ongoing is not None and ongoing.ended is None and ongoing.started == NOW - timedelta(minutes=1)
