"""The reports kept in the index (table `qc_report`, one per day, never purged), and their sign-off.

A report is written once for its day; `appliance qc run --force` may make the day's report again
while nobody has signed it. A signed report is never replaced or signed again: the sign-off (who,
when, a comment) is part of the record an inspector is shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Engine, delete, func, insert, select, update

from appliance.db import as_utc
from appliance.db.schema import qc_report
from appliance.qc.report import Report, Status, digest, facts_of, report_of


class AlreadySigned(Exception):
    """The report was signed off already: it is kept as it is."""


class NoSuchReport(Exception):
    pass


@dataclass(frozen=True)
class StoredReport:
    id: int
    day: date
    produced_at: datetime
    status: Status
    facts: str
    facts_sha256: str
    signed_by: str
    signed_name: str
    signed_at: datetime | None
    signed_comment: str

    @property
    def report(self) -> Report:
        return report_of(self.facts)

    @property
    def signed(self) -> bool:
        return self.signed_at is not None

    @property
    def intact(self) -> bool:
        """Whether the facts still have the SHA-256 written (and mailed) when the report was made."""
        return digest(self.facts) == self.facts_sha256


def stored_of(row: object) -> StoredReport:
    values = row._mapping  # type: ignore[attr-defined]
    return StoredReport(
        values["id"], values["day"], as_utc(values["produced_at"]), Status(values["status"]), values["facts"],
        values["facts_sha256"], values["signed_by"], values["signed_name"], as_utc(values["signed_at"]),
        values["signed_comment"],
    )  # fmt: skip


def save(engine: Engine, report: Report) -> StoredReport:
    """Keep `report` as its day's report (an unsigned one of that day is replaced); AlreadySigned
    when that day's report was signed off."""
    facts = facts_of(report)
    values = {"day": report.day, "produced_at": report.produced_at, "status": report.status.value,
              "facts": facts, "facts_sha256": digest(facts)}  # fmt: skip
    with engine.begin() as connection:
        existing = connection.execute(select(qc_report).where(qc_report.c.day == report.day)).first()
        if existing is not None and existing.signed_at is not None:
            raise AlreadySigned(f"the report of {report.day} is signed off")
        if existing is not None:
            connection.execute(delete(qc_report).where(qc_report.c.id == existing.id))
        identifier = connection.execute(insert(qc_report).values(values).returning(qc_report.c.id)).scalar_one()
    found = get(engine, identifier)
    assert found is not None
    return found


def get(engine: Engine, identifier: int) -> StoredReport | None:
    with engine.connect() as connection:
        row = connection.execute(select(qc_report).where(qc_report.c.id == identifier)).first()
    return stored_of(row) if row is not None else None


def on_day(engine: Engine, day: date) -> StoredReport | None:
    with engine.connect() as connection:
        row = connection.execute(select(qc_report).where(qc_report.c.day == day)).first()
    return stored_of(row) if row is not None else None


def latest(engine: Engine) -> StoredReport | None:
    reports = recent(engine, limit=1)
    return reports[0] if reports else None


def recent(engine: Engine, limit: int = 60, offset: int = 0) -> list[StoredReport]:
    """Reports newest first."""
    query = select(qc_report).order_by(qc_report.c.day.desc()).limit(limit).offset(offset)
    with engine.connect() as connection:
        return [stored_of(row) for row in connection.execute(query)]


def count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(qc_report)) or 0)


def sign(engine: Engine, identifier: int, username: str, name: str, comment: str, now: datetime) -> StoredReport:
    """Record the sign-off of report `identifier`; NoSuchReport, AlreadySigned."""
    statement = (
        update(qc_report)
        .where((qc_report.c.id == identifier) & qc_report.c.signed_at.is_(None))
        .values(signed_by=username, signed_name=name, signed_comment=comment, signed_at=now)
    )
    with engine.begin() as connection:
        changed = connection.execute(statement).rowcount
    found = get(engine, identifier)
    if found is None:
        raise NoSuchReport(f"no quality-control report {identifier}")
    if not changed:
        raise AlreadySigned(f"the report of {found.day} is signed off")
    return found
