"""The dashboard's plots drawn on the server as SVG geometry (no JavaScript library, nothing inline
the CSP would refuse): scales, axes with French date ticks, a polyline, bars, and the table of values
a screen reader or a curious contractor reads instead. `templates/health/plots.html` turns a `Plot`
into `<svg>` with the CSS classes of house.css.

Nothing here imports Flask: the view passes the texts already translated, the language and the
formatters, so the geometry is tested on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time
from babel.numbers import format_decimal

Format = Callable[[float], str]
TICKS = 5  # about as many ticks on each axis


@dataclass(frozen=True)
class Frame:
    """The drawing (viewBox) and the margins left for the axes' labels, in SVG units."""

    width: int = 480
    height: int = 210
    left: int = 64
    right: int = 14
    top: int = 14
    bottom: int = 30

    @property
    def plot_left(self) -> float:
        return float(self.left)

    @property
    def plot_right(self) -> float:
        return float(self.width - self.right)

    @property
    def plot_top(self) -> float:
        return float(self.top)

    @property
    def plot_bottom(self) -> float:
        return float(self.height - self.bottom)


@dataclass(frozen=True)
class Scale:
    """A linear map from the values `low`..`high` to the positions `start`..`end`."""

    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        if self.high == self.low:
            return (self.start + self.end) / 2
        return self.start + (value - self.low) * (self.end - self.start) / (self.high - self.low)


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Line:
    """A polyline; `kind` is its CSS class suffix (measure, forecast, limit)."""

    points: str
    kind: str


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # shown on hover (<title>)


@dataclass(frozen=True)
class Note:
    """A short text on the drawing (beside the "full" line)."""

    x: float
    y: float
    text: str
    kind: str


@dataclass(frozen=True)
class Plot:
    """Everything the template draws. `rows` is the table of values shown instead of the drawing
    to whoever cannot see it (headed by `columns`)."""

    identifier: str
    title: str
    summary: str  # one sentence under the title, also the SVG's description
    frame: Frame
    x_ticks: tuple[Tick, ...] = ()
    y_ticks: tuple[Tick, ...] = ()
    lines: tuple[Line, ...] = ()
    bars: tuple[Bar, ...] = ()
    notes: tuple[Note, ...] = ()
    columns: tuple[str, str] = ("", "")
    rows: tuple[tuple[str, str], ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.lines and not self.bars


def nice_step(span: float, count: int = TICKS) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving about `count` ticks over `span`."""
    if span <= 0:
        return 1.0
    rough = span / count
    power = 10.0 ** math.floor(math.log10(rough))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= rough)


def value_ticks(scale: Scale, label: Format, count: int = TICKS) -> tuple[Tick, ...]:
    """Ticks at round values from `scale.low` to `scale.high`."""
    step = nice_step(scale.high - scale.low, count)
    first = math.ceil(scale.low / step) * step
    values = [first + step * number for number in range(int((scale.high - first) / step + 1e-9) + 1)]
    return tuple(Tick(scale(value), label(value)) for value in values)


def round_up(value: float, count: int = TICKS) -> float:
    """The round value at or above `value` that ends the value axis (1 when `value` is 0)."""
    if value <= 0:
        return 1.0
    step = nice_step(value, count)
    return math.ceil(value / step) * step


def date_ticks(first: date, last: date, scale: Scale, language: str, count: int = 6) -> tuple[Tick, ...]:
    """About `count` day ticks from `first` to `last` ("2 déc."), placed by `scale` on day ordinals."""
    return tuple(Tick(scale(day.toordinal()), day_label(day, language)) for day in day_range(first, last, count))


def day_label(day: date, language: str) -> str:
    return format_date(day, "d MMM", locale=language)


def day_range(first: date, last: date, count: int) -> list[date]:
    """Days from `first` to `last`, evenly spaced, about `count` of them."""
    days = (last - first).days
    step = max(1, math.ceil(days / count))
    return [first + timedelta(days=offset) for offset in range(0, days + 1, step)]


def time_ticks(since: datetime, until: datetime, scale: Scale, zone: ZoneInfo, language: str) -> tuple[Tick, ...]:
    """Ticks from `since` to `until` (placed by `scale` on POSIX seconds): local midnights ("2 déc.")
    over two days or more, else round minutes ("14:30") in `zone`."""
    if until - since >= timedelta(days=2):
        first = since.astimezone(zone).date() + timedelta(days=1)
        days = day_range(first, until.astimezone(zone).date(), 6)
        return tuple(Tick(scale(midnight(day, zone).timestamp()), day_label(day, language)) for day in days)
    minutes = nice_minutes((until - since).total_seconds() / 60)
    moment = since.astimezone(zone).replace(second=0, microsecond=0)
    moment += timedelta(minutes=(-moment.minute) % minutes)
    moments = []
    while moment <= until:
        moments.append(moment)
        moment += timedelta(minutes=minutes)
    return tuple(Tick(scale(each.timestamp()), format_time(each, "HH:mm", locale=language)) for each in moments)


def nice_minutes(span_minutes: float, count: int = TICKS) -> int:
    """A round number of minutes between ticks."""
    rough = span_minutes / count
    return next((step for step in (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720) if step >= rough), 1440)


def midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def polyline(points: Sequence[tuple[float, float]]) -> str:
    """SVG `points` from positions, one decimal."""
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in points)


def time_axis(since: datetime, until: datetime, frame: Frame) -> Scale:
    return Scale(since.timestamp(), until.timestamp(), frame.plot_left, frame.plot_right)


def value_axis(high: float, frame: Frame) -> Scale:
    return Scale(0.0, high, frame.plot_bottom, frame.plot_top)


@dataclass(frozen=True)
class DiskTexts:
    """The disk plot's words, translated by the view."""

    title: str
    summary: str
    used_column: str
    full: str  # beside the capacity line
    when_column: str


def disk_plot(
    used: Sequence[tuple[datetime, float]],
    capacity: float | None,
    days_left: float | None,
    now: datetime,
    since: datetime,
    texts: DiskTexts,
    language: str,
    zone: ZoneInfo,
    size: Format,
    frame: Frame | None = None,
) -> Plot:
    """Used bytes over time, and the straight line from the last value to `capacity` reached in
    `days_left` days (drawn at most as far ahead as the plot looks back)."""
    frame = frame or Frame()
    if not used:
        return Plot("disk-plot", texts.title, texts.summary, frame)
    forecast_end = forecast_moment(now, since, days_left)
    until = max(forecast_end or now, used[-1][0])
    top = round_up(max([capacity or 0.0, *(value for _, value in used)]))
    x, y = time_axis(since, until, frame), value_axis(top, frame)
    lines = [Line(polyline([(x(moment.timestamp()), y(value)) for moment, value in used]), "measure")]
    notes: list[Note] = []
    if capacity:
        lines.append(Line(polyline([(frame.plot_left, y(capacity)), (frame.plot_right, y(capacity))]), "limit"))
        notes.append(Note(frame.plot_left + 4, y(capacity) - 4, texts.full, "limit"))
        if forecast_end is not None and days_left is not None:
            lines.append(Line(forecast_line(used[-1], capacity, days_left, forecast_end, x, y), "forecast"))
    rows = tuple((moment.astimezone(zone).strftime("%d/%m/%Y %H:%M"), size(value)) for moment, value in used)
    return Plot(
        "disk-plot",
        texts.title,
        texts.summary,
        frame,
        time_ticks(since, until, x, zone, language),
        value_ticks(y, size),
        tuple(lines),
        notes=tuple(notes),
        columns=(texts.when_column, texts.used_column),
        rows=rows,
    )


def forecast_moment(now: datetime, since: datetime, days_left: float | None) -> datetime | None:
    """Where the forecast line ends: when the disk is full, or as far ahead as the plot looks back."""
    if days_left is None or days_left < 0 or math.isinf(days_left) or math.isnan(days_left):
        return None
    return now + min(timedelta(days=days_left), now - since)


def forecast_line(
    last: tuple[datetime, float], capacity: float, days_left: float, end: datetime, x: Scale, y: Scale
) -> str:
    """From the last measure towards `capacity` in `days_left` days, cut at `end`."""
    moment, value = last
    full_at = moment + timedelta(days=days_left)
    if full_at <= end or full_at == moment:
        return polyline([(x(moment.timestamp()), y(value)), (x(full_at.timestamp()), y(capacity))])
    share = (end - moment) / (full_at - moment)
    return polyline([(x(moment.timestamp()), y(value)), (x(end.timestamp()), y(value + (capacity - value) * share))])


def daily_bars(
    identifier: str,
    counts: Sequence[tuple[date, int]],
    title: str,
    summary: str,
    columns: tuple[str, str],
    bar_label: Callable[[date, int], str],
    language: str,
    frame: Frame | None = None,
) -> Plot:
    """One bar a day; `bar_label(day, count)` is each bar's hover text."""
    frame = frame or Frame()
    if not counts or not any(count for _, count in counts):
        return Plot(identifier, title, summary, frame, columns=columns, rows=table_rows(counts, language))
    first, last = counts[0][0], counts[-1][0]
    x = Scale(first.toordinal(), last.toordinal() + 1, frame.plot_left, frame.plot_right)
    y = value_axis(max(round_up(max(count for _, count in counts)), float(TICKS)), frame)  # whole counts
    width = max((frame.plot_right - frame.plot_left) / len(counts) - 1, 1)
    bars = tuple(
        Bar(x(day.toordinal()), y(count), width, y(0) - y(count), bar_label(day, count)) for day, count in counts
    )
    center = Scale(first.toordinal() - 0.5, last.toordinal() + 0.5, frame.plot_left, frame.plot_right)
    return Plot(
        identifier,
        title,
        summary,
        frame,
        date_ticks(first, last, center, language),
        value_ticks(y, lambda value: format_decimal(value, locale=language)),
        bars=bars,
        columns=columns,
        rows=table_rows(counts, language),
    )


def table_rows(counts: Sequence[tuple[date, int]], language: str) -> tuple[tuple[str, str], ...]:
    return tuple(
        (format_date(day, "short", locale=language), format_decimal(count, locale=language)) for day, count in counts
    )


def percent_plot(
    identifier: str,
    values: Sequence[tuple[datetime, float]],
    since: datetime,
    until: datetime,
    title: str,
    summary: str,
    columns: tuple[str, str],
    language: str,
    zone: ZoneInfo,
    frame: Frame | None = None,
) -> Plot:
    """A percentage (0 to 100) over a short time: the UPS's charge during an outage."""
    frame = frame or Frame()
    if not values:
        return Plot(identifier, title, summary, frame, columns=columns)
    x, y = time_axis(since, until, frame), value_axis(100.0, frame)
    line = Line(polyline([(x(moment.timestamp()), y(value)) for moment, value in values]), "measure")
    rows = tuple(
        (
            format_time(moment.astimezone(zone), "HH:mm:ss", locale=language),
            f"{format_decimal(value, locale=language)} %",
        )
        for moment, value in values
    )
    return Plot(
        identifier,
        title,
        summary,
        frame,
        time_ticks(since, until, x, zone, language),
        value_ticks(y, lambda value: f"{value:.0f} %"),
        (line,),
        columns=columns,
        rows=rows,
    )
