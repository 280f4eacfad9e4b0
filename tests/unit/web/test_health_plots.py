"""The SVG geometry of the dashboard's plots, without Flask: scales, round ticks, French day ticks,
the disk forecast reaching the "full" line, one bar a day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from appliance.web.health.plots import (
    DiskTexts,
    Frame,
    Scale,
    daily_bars,
    date_ticks,
    disk_plot,
    nice_step,
    percent_plot,
    round_up,
    time_ticks,
    value_ticks,
)

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
TEXTS = DiskTexts("Disque", "résumé", "Occupé", "Plein", "Moment")


def points(text: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (pair.split(",") for pair in text.split())]


def test_a_scale_maps_values_to_positions_and_upwards_for_values() -> None:
    x = Scale(0, 10, 70, 620)
    assert (x(0), x(5), x(10)) == (70, 345, 620)
    y = Scale(0, 100, 190, 14)
    assert (y(0), y(100)) == (190, 14)
    assert Scale(3, 3, 0, 10)(3) == 5  # one value: the middle


def test_ticks_fall_on_round_values() -> None:
    assert [nice_step(span) for span in (7, 100, 2_000_000_000_000)] == [2, 20, 500_000_000_000]
    assert (round_up(0), round_up(87), round_up(1_450_000_000_000)) == (1.0, 100, 1_500_000_000_000)
    ticks = value_ticks(Scale(0, 100, 190, 14), lambda value: f"{value:.0f} %")
    assert [tick.label for tick in ticks] == ["0 %", "20 %", "40 %", "60 %", "80 %", "100 %"]
    assert ticks[0].position == 190 and ticks[-1].position == 14


def test_day_ticks_are_french() -> None:
    first, last = date(2026, 9, 4), date(2026, 12, 2)
    ticks = date_ticks(first, last, Scale(first.toordinal(), last.toordinal(), 0, 89), "fr")
    assert ticks[0].label == "4 sept." and ticks[0].position == 0
    assert 5 <= len(ticks) <= 7 and all(". " not in tick.label for tick in ticks)
    assert any(tick.label.endswith("oct.") for tick in ticks) and any("nov." in tick.label for tick in ticks)


def test_time_ticks_are_days_over_days_and_minutes_within_an_hour() -> None:
    since = NOW - timedelta(days=90)
    scale = Scale(since.timestamp(), NOW.timestamp(), 0, 1000)
    days = time_ticks(since, NOW, scale, PARIS, "fr")
    assert days[0].label == "4 sept." and all(0 <= tick.position <= 1000 for tick in days)
    hour = time_ticks(
        NOW, NOW + timedelta(minutes=40), Scale(NOW.timestamp(), NOW.timestamp() + 2400, 0, 400), PARIS, "fr"
    )
    assert [tick.label for tick in hour] == ["13:00", "13:10", "13:20", "13:30", "13:40"]  # Paris is UTC+1 in December


def test_the_disk_forecast_goes_from_the_last_value_to_the_full_line() -> None:
    since = NOW - timedelta(days=90)
    used = [(since + timedelta(days=day), 1000.0 + day * 10) for day in range(91)]  # 1,900 used at NOW
    plot = disk_plot(used, 2000.0, 10.0, NOW, since, TEXTS, "fr", PARIS, lambda value: f"{value:.0f}")
    measure, limit, forecast = plot.lines
    assert (measure.kind, limit.kind, forecast.kind) == ("measure", "limit", "forecast")
    assert len(points(measure.points)) == 91
    start, end = points(forecast.points)
    assert start == points(measure.points)[-1]
    assert end[1] == points(limit.points)[0][1]  # reaches the capacity ...
    assert end[0] == plot.frame.plot_right  # ... at the right edge: ten days ahead ends the time axis
    assert plot.notes[0].text == "Plein" and len(plot.rows) == 91


def test_a_far_forecast_is_cut_where_the_plot_ends() -> None:
    since = NOW - timedelta(days=90)
    used = [(since, 100.0), (NOW, 200.0)]
    plot = disk_plot(used, 1000.0, 720.0, NOW, since, TEXTS, "fr", PARIS, str)
    start, end = points(plot.lines[2].points)
    assert end[0] == plot.frame.plot_right and points(plot.lines[1].points)[0][1] < end[1] < start[1]


def test_no_forecast_and_no_capacity_draw_the_measure_alone() -> None:
    since = NOW - timedelta(days=90)
    plot = disk_plot([(NOW, 5.0)], None, None, NOW, since, TEXTS, "fr", PARIS, str)
    assert [line.kind for line in plot.lines] == ["measure"]
    assert disk_plot([], None, None, NOW, since, TEXTS, "fr", PARIS, str).empty


def test_one_bar_a_day_as_tall_as_its_count() -> None:
    counts = [(date(2026, 11, 1) + timedelta(days=day), day % 3 * 50) for day in range(30)]
    frame = Frame()
    plot = daily_bars(
        "images", counts, "Images", "résumé", ("Jour", "Images"), lambda day, count: f"{day} {count}", "fr"
    )
    assert len(plot.bars) == 30 and plot.bars[0].height == 0
    tallest = max(plot.bars, key=lambda bar: bar.height)
    assert tallest.y == frame.plot_top and tallest.height == frame.plot_bottom - frame.plot_top
    assert plot.bars[1].x < plot.bars[2].x and plot.rows[1] == ("02/11/2026", "50")
    assert daily_bars("images", [(date(2026, 11, 1), 0)], "t", "s", ("a", "b"), str, "fr").empty


def test_a_percentage_over_a_short_time() -> None:
    values = [(NOW + timedelta(minutes=minute), 100.0 - minute) for minute in range(0, 31, 5)]
    plot = percent_plot("ups", values, NOW, NOW + timedelta(minutes=30), "t", "s", ("a", "b"), "fr", PARIS)
    drawn = points(plot.lines[0].points)
    assert len(drawn) == 7 and drawn[0][0] == plot.frame.plot_left and drawn[-1][0] == plot.frame.plot_right
    assert plot.y_ticks[-1].label == "100 %" and plot.rows[0] == ("13:00:00", "100 %")
