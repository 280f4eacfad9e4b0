"""The distribution of one quantity of the survey as a histogram, drawn with the dashboard's plot
geometry (`appliance.web.health.plots`): bars per value interval, a vertical line at the reference
level, its label. No Flask here: the view passes the texts already translated."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from babel.numbers import format_decimal

from appliance.web.health.plots import (
    TICKS,
    Bar,
    Frame,
    Line,
    Note,
    Plot,
    Scale,
    nice_step,
    polyline,
    round_up,
    value_axis,
    value_ticks,
)

BINS = 12  # about as many bars


@dataclass(frozen=True)
class HistogramTexts:
    title: str
    summary: str
    value_column: str  # "DLP (mGy.cm)"
    count_column: str
    reference: str  # "NRD 850"
    bar_label: str  # "{low} – {high}: {count}" with those names


def histogram(
    identifier: str,
    values: Sequence[float],
    reference: float | None,
    texts: HistogramTexts,
    language: str,
    frame: Frame | None = None,
) -> Plot:
    """How many values fall in each interval from 0 to past the largest value and the level."""
    frame = frame or Frame()
    if not values:
        return Plot(identifier, texts.title, texts.summary, frame, columns=(texts.value_column, texts.count_column))
    top = round_up(max([*values, (reference or 0.0) * 1.1]), BINS)
    width = nice_step(top, BINS)
    edges = [width * number for number in range(math.ceil(top / width) + 1)]
    counts = [sum(1 for value in values if low <= value < low + width) for low in edges[:-1]]
    counts[-1] += sum(1 for value in values if value >= edges[-1])
    x = Scale(0.0, edges[-1], frame.plot_left, frame.plot_right)
    y = value_axis(max(round_up(max(counts)), float(TICKS)), frame)
    number = lambda value: format_decimal(value, locale=language)  # noqa: E731
    bars = tuple(
        Bar(x(low), y(count), max(x(low + width) - x(low) - 1, 1), y(0) - y(count),
            texts.bar_label.format(low=number(low), high=number(low + width), count=count))
        for low, count in zip(edges[:-1], counts, strict=True)
    )  # fmt: skip
    lines, notes = reference_mark(reference, x, frame, texts.reference)
    return Plot(
        identifier,
        texts.title,
        texts.summary,
        frame,
        value_ticks(x, number),
        value_ticks(y, number),
        lines,
        bars,
        notes,
        (texts.value_column, texts.count_column),
        tuple(
            (f"{number(low)} – {number(low + width)}", number(count))
            for low, count in zip(edges[:-1], counts, strict=True)
        ),
    )


def reference_mark(
    reference: float | None, x: Scale, frame: Frame, label: str
) -> tuple[tuple[Line, ...], tuple[Note, ...]]:
    """A vertical line at the level and its label at the top, or nothing without a level."""
    if reference is None:
        return (), ()
    position = x(reference)
    line = Line(polyline([(position, frame.plot_top), (position, frame.plot_bottom)]), "limit")
    return (line,), (Note(position + 4, frame.plot_top + 10, label, "limit"),)
