"""A finding: one thing about the box someone should know, how serious it is, and since when; and a
reading: what one source saw in one round (its findings, and the numbers the dashboard plots)."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime


class Severity(enum.Enum):
    OK = "ok"
    WARNING = "warning"  # someone should look today
    CRITICAL = "critical"  # images or messages are at risk now
    ABSENT = "absent"  # the source does not exist on this box (no RAID on a laptop, no UPS configured)

    @property
    def rank(self) -> int:
        """Order for "the worst of": absent < ok < warning < critical."""
        return RANKS[self]

    @property
    def is_problem(self) -> bool:
        return self in (Severity.WARNING, Severity.CRITICAL)


RANKS = {Severity.ABSENT: 0, Severity.OK: 1, Severity.WARNING: 2, Severity.CRITICAL: 3}


def worst(severities: Iterable[Severity]) -> Severity:
    """The most serious of `severities`; ABSENT when there are none."""
    return max(severities, key=lambda severity: severity.rank, default=Severity.ABSENT)


@dataclass(frozen=True)
class Finding:
    """`source` is the plugin ("raid", "smart", ...), `subject` what it is about (an array, a disk, a
    channel); `message` says it in French for a secretary and carries no patient data; `detail` is
    for the contractor (devices, serials, numbers); `since` when the situation began, when the
    source knows it (otherwise the store keeps when it was first seen)."""

    source: str
    subject: str
    severity: Severity
    message: str
    detail: str = ""
    since: datetime | None = None


@dataclass(frozen=True)
class Measure:
    """A number the dashboard plots over time: `name` like "disk.data.used_bytes"."""

    name: str
    value: float


@dataclass(frozen=True)
class Reading:
    """What one source saw in one round. A subject it reported before and not now has gone back to
    normal (or away): the store records that as a change to OK."""

    findings: list[Finding]
    measures: list[Measure] = field(default_factory=list)
