"""A finding: one thing about the box someone should know, how serious it is, and since when."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class Severity(enum.Enum):
    INFORMATION = "information"
    WARNING = "warning"  # someone should look today
    CRITICAL = "critical"  # images or messages are at risk now


@dataclass(frozen=True)
class Finding:
    """`source` is the plugin ("outbox", "raid", ...), `subject` what it is about (a channel, an
    array, a disk); `message` says it for people and carries no patient data."""

    source: str
    subject: str
    severity: Severity
    message: str
    since: datetime | None = None
