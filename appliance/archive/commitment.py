"""Storage commitment (W4): which of the instances a modality asks about the archive really holds.

An instance is committed only when it is indexed with the SOP class the modality names and its file
is present with the SHA-256 recorded at ingest: the answer tells the truth about what is durably
stored, so that the modality may delete its copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select, update

from appliance.archive.storage import FileStore, sha256_of_file
from appliance.archive.tables import instance
from appliance.worklist.tables import commitment_request

NO_SUCH_OBJECT_INSTANCE = 0x0112  # PS3.4 J.3.2.2.1 failure reasons
CLASS_INSTANCE_CONFLICT = 0x0119
PROCESSING_FAILURE = 0x0110


@dataclass(frozen=True)
class Reference:
    sop_class_uid: str
    sop_instance_uid: str


@dataclass
class CommitmentResult:
    committed: list[Reference] = field(default_factory=list)
    failed: list[tuple[Reference, int]] = field(default_factory=list)


def check(engine: Engine, files: FileStore, references: list[Reference]) -> CommitmentResult:
    """Split the references into those durably stored and those not, with a reason each."""
    result = CommitmentResult()
    uids = [reference.sop_instance_uid for reference in references]
    statement = select(instance.c.sop_instance_uid, instance.c.sop_class_uid, instance.c.path, instance.c.sha256)
    with engine.connect() as connection:
        rows = {
            row.sop_instance_uid: row
            for row in connection.execute(statement.where(instance.c.sop_instance_uid.in_(uids)))
        }
    for reference in references:
        row = rows.get(reference.sop_instance_uid)
        if row is None:
            result.failed.append((reference, NO_SUCH_OBJECT_INSTANCE))
        elif row.sop_class_uid != reference.sop_class_uid:
            result.failed.append((reference, CLASS_INSTANCE_CONFLICT))
        elif not intact(files, row.path, row.sha256):
            result.failed.append((reference, PROCESSING_FAILURE))
        else:
            result.committed.append(reference)
    return result


def intact(files: FileStore, path: str, sha256: str) -> bool:
    location = files.absolute(path)
    return location.is_file() and sha256_of_file(location) == sha256


def record_request(engine: Engine, transaction_uid: str, calling_ae_title: str, items: int) -> int:
    with engine.begin() as connection:
        key = connection.execute(
            insert(commitment_request).values(
                transaction_uid=transaction_uid,
                calling_ae_title=calling_ae_title,
                requested_items=items,
                status="PENDING",
                requested_at=datetime.now(UTC),
            )
        ).inserted_primary_key
    assert key is not None
    return int(key[0])


def record_report(engine: Engine, request_id: int, result: CommitmentResult | None, detail: str = "") -> None:
    """Note that the report went out (or could not: `result` None and the reason in `detail`)."""
    values = {"status": "UNREPORTABLE", "detail": detail, "reported_at": datetime.now(UTC)}
    if result is not None:
        values |= {"status": "REPORTED", "committed_items": len(result.committed), "failed_items": len(result.failed)}
    with engine.begin() as connection:
        connection.execute(update(commitment_request).where(commitment_request.c.id == request_id).values(**values))
