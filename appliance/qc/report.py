"""The report's shape: sections, each with a status, a sentence, detail lines and numbers, and the
report's JSON facts (what is stored; HTML, PDF and mail are rendered from them)."""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

FORMAT = 1  # of the stored facts; a later format must still read this one


class Status(enum.Enum):
    OK = "ok"
    WARNING = "warning"  # to look at, nothing lost
    FAILURE = "failure"  # images, backups or the trail are at risk: a finding and a mail
    ABSENT = "absent"  # not on this box (no RAID under `make run`, no UPS configured)

    @property
    def rank(self) -> int:
        return {Status.ABSENT: 0, Status.OK: 1, Status.WARNING: 2, Status.FAILURE: 3}[self]

    @property
    def word(self) -> str:
        """The status in French, as the report and the mail show it."""
        return {Status.OK: "conforme", Status.WARNING: "à surveiller", Status.FAILURE: "ÉCHEC",
                Status.ABSENT: "sans objet"}[self]  # fmt: skip


def worst(statuses: Iterable[Status]) -> Status:
    """The most serious status; OK when there is none (a report with nothing applicable is fine)."""
    return max(statuses, key=lambda status: status.rank, default=Status.OK)


@dataclass(frozen=True)
class Section:
    """One check of the report. `title`, `summary` and `lines` are French, for the practice and an
    inspector, and never carry a patient's name or birth date; `numbers` keeps the figures."""

    key: str
    title: str
    status: Status
    summary: str
    lines: tuple[str, ...] = ()
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    day: date
    produced_at: datetime
    site_name: str
    period_start: datetime
    sections: tuple[Section, ...]

    @property
    def status(self) -> Status:
        return worst(section.status for section in self.sections if section.status is not Status.ABSENT)

    def section(self, key: str) -> Section | None:
        return next((section for section in self.sections if section.key == key), None)

    def number(self, key: str, name: str, default: Any = None) -> Any:
        found = self.section(key)
        return found.numbers.get(name, default) if found is not None else default


def facts_of(report: Report) -> str:
    """The report as the JSON text kept in the index (sorted keys, UTF-8 as is)."""
    document = {
        "format": FORMAT,
        "day": report.day.isoformat(),
        "produced_at": report.produced_at.isoformat(),
        "site_name": report.site_name,
        "period_start": report.period_start.isoformat(),
        "status": report.status.value,
        "sections": [
            {"key": section.key, "title": section.title, "status": section.status.value,
             "summary": section.summary, "lines": list(section.lines), "numbers": section.numbers}
            for section in report.sections
        ],
    }  # fmt: skip
    return json.dumps(document, ensure_ascii=False, sort_keys=True, indent=1)


def report_of(facts: str) -> Report:
    """The report back from its stored JSON text (raises ValueError when it is not one)."""
    try:
        document = json.loads(facts)
        sections = tuple(
            Section(item["key"], item["title"], Status(item["status"]), item["summary"], tuple(item["lines"]),
                    dict(item["numbers"]))
            for item in document["sections"]
        )  # fmt: skip
        return Report(date.fromisoformat(document["day"]), datetime.fromisoformat(document["produced_at"]),
                      document["site_name"], datetime.fromisoformat(document["period_start"]), sections)  # fmt: skip
    except (KeyError, TypeError) as error:
        raise ValueError(f"not a quality-control report: {error}") from error


def digest(facts: str) -> str:
    """The SHA-256 of the stored facts, hex (mailed out of the box: a later edit would show)."""
    return hashlib.sha256(facts.encode("utf-8")).hexdigest()
