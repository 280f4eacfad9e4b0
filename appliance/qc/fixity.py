"""Image fixity on a rolling sample: each day the next slice of the archive's files, in index order
after the previous report's cursor, is read again and its SHA-256 compared with the one the index
keeps. The slice is 1/N of the instances (`qc.fixity_cycle_days` = N), so the whole archive is
read once every N days; the cursor (the last instance id read) goes into the report's facts and
the next report starts after it, wrapping round at the end.

A file found altered or missing is checked once more against the instance's current row: the
lossless compressor may have replaced it (new path, new SHA-256) between the read of the row and
the read of the file. Read here through `appliance.db.schema` (the platform does not import the
archive domain); the same rule as `appliance.archive.integrity`.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from appliance.db.schema import instance, series, study

BLOCK = 1 << 20
LISTED = 100  # damaged files named in a report (the counts are complete)


@dataclass
class FixityResult:
    total: int = 0  # instances in the index
    sample_size: int = 0
    checked: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    first_id: int = 0
    last_id: int = 0  # the cursor the next report starts after
    wrapped: bool = False  # the slice went past the end and began again at the start
    missing: list[dict[str, str]] = field(default_factory=list)
    altered: list[dict[str, str]] = field(default_factory=list)


def sample_size(total: int, cycle_days: int) -> int:
    """How many files a day reads so that `total` are all read in `cycle_days` days."""
    return math.ceil(total / cycle_days) if total else 0


def check_sample(engine: Engine, archive_directory: Path, after_id: int, cycle_days: int) -> FixityResult:
    """Read the day's slice after `after_id` and compare each file with its SHA-256."""
    started = time.monotonic()
    result = FixityResult(total=instance_count(engine))
    result.sample_size = sample_size(result.total, cycle_days)
    rows = slice_after(engine, after_id, result.sample_size)
    if len(rows) < result.sample_size and after_id > 0:
        result.wrapped = True
        seen = {row["id"] for row in rows}
        rows += [row for row in slice_after(engine, 0, result.sample_size - len(rows)) if row["id"] not in seen]
    for row in rows:
        state, checked_row = file_state_now(engine, archive_directory, row)
        result.checked += 1
        result.bytes_read += checked_row.get("size_bytes", 0) if state != "missing" else 0
        if state != "intact":
            (result.missing if state == "missing" else result.altered).append(damaged(engine, checked_row))
    if rows:
        result.first_id, result.last_id = rows[0]["id"], rows[-1]["id"]
    result.seconds = round(time.monotonic() - started, 3)
    return result


def instance_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(instance)) or 0)


def slice_after(engine: Engine, after_id: int, limit: int) -> list[dict[str, Any]]:
    if limit <= 0:
        return []
    statement = (
        select(instance.c.id, instance.c.path, instance.c.sha256, instance.c.size_bytes, instance.c.series_pk)
        .where(instance.c.id > after_id)
        .order_by(instance.c.id)
        .limit(limit)
    )
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(statement)]


def file_state(archive_directory: Path, relative: str, sha256: str) -> str:
    """intact, missing or altered."""
    path = archive_directory / relative
    if not path.is_file():
        return "missing"
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(BLOCK), b""):
            digest.update(block)
    return "intact" if digest.hexdigest() == sha256 else "altered"


def file_state_now(engine: Engine, archive_directory: Path, row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The file's state, checked again against the instance's current row when it looks damaged."""
    state = file_state(archive_directory, row["path"], row["sha256"])
    if state == "intact":
        return state, row
    statement = select(instance.c.id, instance.c.path, instance.c.sha256, instance.c.size_bytes,
                       instance.c.series_pk).where(instance.c.id == row["id"])  # fmt: skip
    with engine.connect() as connection:
        current = connection.execute(statement).first()
    if current is None:
        return "intact", row  # left the index meanwhile: nothing to restore
    now = dict(current._mapping)
    if (now["path"], now["sha256"]) == (row["path"], row["sha256"]):
        return state, row
    return file_state(archive_directory, now["path"], now["sha256"]), now


def damaged(engine: Engine, row: dict[str, Any]) -> dict[str, str]:
    """What restoring the file needs: its path, its study's UID and date (no patient data)."""
    statement = (
        select(study.c.study_instance_uid, study.c.study_date)
        .select_from(series.join(study, study.c.id == series.c.study_pk))
        .where(series.c.id == row["series_pk"])
    )
    with engine.connect() as connection:
        found = connection.execute(statement).first()
    uid, day = (found.study_instance_uid, found.study_date) if found is not None else ("", "")
    return {"path": row["path"], "study_instance_uid": uid, "study_date": day}
