"""The results of backup runs and restore drills, kept for the console, the monitor and the
quality-control report: one JSON line per run in `<state>/runs.jsonl` and `<state>/drills.jsonl`.

Files rather than index rows: the backup runs as root (a root-owned SQLite journal beside the index
would lock the daemons out), a restore of the index must not roll back the record of the backups,
and the monitor (user `appliance`) reads them with no lock. They hold no patient data (targets,
labels, archive names, counts, study UIDs of a failed drill), readable by all (0644).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

RUNS = "runs.jsonl"
DRILLS = "drills.jsonl"


@dataclass(frozen=True)
class RunRecord:
    """One backup to one target. Sizes as borg counts them for this archive: `original_bytes`
    read, `compressed_bytes` after compression, `deduplicated_bytes` actually added (sent)."""

    target: str
    started_at: datetime
    finished_at: datetime
    succeeded: bool
    disk: str = ""  # the USB disk's label
    archive: str = ""
    files: int = 0
    original_bytes: int = 0
    compressed_bytes: int = 0
    deduplicated_bytes: int = 0
    reason: str = ""  # French, for the practice (why it failed)
    detail: str = ""  # for the contractor (borg's last lines)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DrillRecord:
    """One restore drill: the index snapshot and a sample of studies extracted and checked."""

    target: str
    started_at: datetime
    finished_at: datetime
    succeeded: bool
    archive: str = ""
    disk: str = ""
    index_problems: list[str] = field(default_factory=list)
    studies: int = 0
    files: int = 0
    bytes: int = 0
    missing: list[str] = field(default_factory=list)  # "study UID: path" of files the backup lacks
    altered: list[str] = field(default_factory=list)  # "study UID: path" whose SHA-256 differs
    reason: str = ""
    detail: str = ""

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


Record = TypeVar("Record", RunRecord, DrillRecord)


def append(state_directory: Path, record: RunRecord | DrillRecord) -> None:
    """Add `record` to its file, synced (the line is whole or absent after a power cut)."""
    state_directory.mkdir(parents=True, exist_ok=True)
    path = state_directory / (RUNS if isinstance(record, RunRecord) else DRILLS)
    line = json.dumps(asdict(record), default=datetime.isoformat, ensure_ascii=False) + "\n"
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line.encode("utf-8"))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def runs(state_directory: Path) -> list[RunRecord]:
    """Every backup run recorded, oldest first."""
    return read(state_directory / RUNS, RunRecord)


def drills(state_directory: Path) -> list[DrillRecord]:
    """Every drill recorded, oldest first."""
    return read(state_directory / DRILLS, DrillRecord)


def read(path: Path, kind: type[Record]) -> list[Record]:
    """The records of `path` (a line cut short by a crash is skipped)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(record_of(json.loads(line), kind))
        except (ValueError, TypeError, KeyError):
            continue
    return records


def record_of(values: dict[str, Any], kind: type[Record]) -> Record:
    known = {item.name for item in fields(kind)}
    typed = {key: value for key, value in values.items() if key in known}
    for moment in ("started_at", "finished_at"):
        typed[moment] = datetime.fromisoformat(typed[moment])
    return kind(**typed)


def last_run(records: list[RunRecord], target: str, succeeded: bool | None = None) -> RunRecord | None:
    """The latest run to `target` (only successful or failed ones when `succeeded` says so)."""
    for record in reversed(records):
        if record.target == target and (succeeded is None or record.succeeded == succeeded):
            return record
    return None


@dataclass(frozen=True)
class Rotation:
    """Which USB disk was used last (take it off site now), and which to plug in next (the one
    whose last backup is the oldest, or never used)."""

    last_disk: str
    last_at: datetime | None
    next_disk: str


def rotation(records: list[RunRecord], labels: tuple[str, ...]) -> Rotation | None:
    """The rotation advice for the configured `labels`; None when no disk is configured."""
    if not labels:
        return None
    used = {record.disk: record.finished_at for record in records if record.succeeded and record.disk in labels}
    last_disk = max(used, key=lambda label: used[label]) if used else ""
    others = [label for label in labels if label != last_disk] or list(labels)
    next_disk = min(others, key=lambda label: used[label].timestamp() if label in used else float("-inf"))
    return Rotation(last_disk, used.get(last_disk), next_disk)


KEYS = "keys-exported.jsonl"


@dataclass(frozen=True)
class KeyExport:
    """`appliance backup export-key` ran for `target` (its USB disk's `disk`): the escrow page was
    printed from it. Neither the key nor the passphrase is kept here."""

    target: str
    at: datetime
    disk: str = ""
    format: str = ""


def record_key_export(state_directory: Path, export: KeyExport) -> None:
    """Add the export to `keys-exported.jsonl` (0644: the console shows that it was done)."""
    state_directory.mkdir(parents=True, exist_ok=True)
    line = json.dumps(asdict(export), default=datetime.isoformat, ensure_ascii=False) + "\n"
    descriptor = os.open(state_directory / KEYS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line.encode("utf-8"))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def key_exports(state_directory: Path) -> list[KeyExport]:
    """Every key export recorded, oldest first (a line cut short is skipped)."""
    path = state_directory / KEYS
    if not path.is_file():
        return []
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            values = json.loads(line)
            found.append(KeyExport(values["target"], datetime.fromisoformat(values["at"]), values.get("disk", ""),
                                   values.get("format", "")))  # fmt: skip
        except (ValueError, TypeError, KeyError):
            continue
    return found
