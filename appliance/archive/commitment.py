"""Storage commitment (W4): which of the instances a modality asks about the archive really holds,
and the report that tells it, delivered through the outbox.

An instance is committed only when it is indexed with the SOP class the modality names and its file
is present with the SHA-256 recorded at ingest: the answer tells the truth about what is durably
stored, so that the modality may delete its copy.

A request is recorded with its references when it arrives (`record_request`: the N-ACTION is then
answered); `check_received` checks the recorded requests and queues each report in the outbox, in
one transaction, on the channel `storage-commitment:<AE>`; the DICOM edge delivers it on a new
association and retries. Nothing is lost when the daemon stops in between: a request not checked
yet is checked at the next start, a report not delivered yet is delivered then.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select, update

from appliance.archive.storage import FileStore, sha256_of_file
from appliance.db.schema import commitment_request, instance
from appliance.outbox import enqueue

NO_SUCH_OBJECT_INSTANCE = 0x0112  # PS3.4 J.3.2.2.1 failure reasons
CLASS_INSTANCE_CONFLICT = 0x0119
PROCESSING_FAILURE = 0x0110
CHANNEL = "storage-commitment"
REPORT = "N-EVENT-REPORT"
RECEIVED = "RECEIVED"  # recorded, not checked yet
QUEUED = "QUEUED"  # checked; the report waits in the outbox
REPORTED = "REPORTED"  # the modality acknowledged the report


@dataclass(frozen=True)
class Reference:
    sop_class_uid: str
    sop_instance_uid: str


@dataclass
class CommitmentResult:
    committed: list[Reference] = field(default_factory=list)
    failed: list[tuple[Reference, int]] = field(default_factory=list)


@dataclass(frozen=True)
class Report:
    """What the N-EVENT-REPORT says (PS3.4 J.3.3): event type 1 when everything is committed, else 2."""

    request_id: int
    transaction_uid: str
    result: CommitmentResult

    @property
    def event_type(self) -> int:
        return 2 if self.result.failed else 1


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


def record_request(engine: Engine, transaction_uid: str, calling_ae_title: str, references: list[Reference]) -> int:
    """Record an N-ACTION request with its references, durably, before it is answered."""
    values = {
        "transaction_uid": transaction_uid,
        "calling_ae_title": calling_ae_title,
        "requested_items": len(references),
        "referenced_instances": json.dumps(
            [[reference.sop_class_uid, reference.sop_instance_uid] for reference in references]
        ),
        "status": RECEIVED,
        "requested_at": datetime.now(UTC),
    }
    with engine.begin() as connection:
        key = connection.execute(insert(commitment_request).values(values)).inserted_primary_key
    assert key is not None
    return int(key[0])


def check_received(engine: Engine, files: FileStore, limit: int = 20) -> int:
    """Check the requests not checked yet and queue their reports; return how many."""
    statement = (
        select(commitment_request)
        .where(commitment_request.c.status == RECEIVED)
        .order_by(commitment_request.c.id)
        .limit(limit)
    )
    with engine.connect() as connection:
        requests = connection.execute(statement).all()
    for request in requests:
        references = [
            Reference(sop_class, sop_instance) for sop_class, sop_instance in json.loads(request.referenced_instances)
        ]
        result = check(engine, files, references)
        queue_report(engine, Report(request.id, request.transaction_uid, result), request.calling_ae_title)
    return len(requests)


def queue_report(engine: Engine, report: Report, calling_ae_title: str) -> None:
    committed, failed = len(report.result.committed), len(report.result.failed)
    summary = f"storage commitment {report.transaction_uid}: {committed} committed, {failed} failed"
    with engine.begin() as connection:
        cause = f"commitment:{report.request_id}"
        enqueue(connection, f"{CHANNEL}:{calling_ae_title}", cause, REPORT, encoded(report), summary)
        connection.execute(
            update(commitment_request)
            .where(commitment_request.c.id == report.request_id)
            .values(status=QUEUED, committed_items=committed, failed_items=failed)
        )


def encoded(report: Report) -> bytes:
    """The report as the outbox keeps it (JSON)."""
    document = {
        "request_id": report.request_id,
        "transaction_uid": report.transaction_uid,
        "committed": [[reference.sop_class_uid, reference.sop_instance_uid] for reference in report.result.committed],
        "failed": [[ref.sop_class_uid, ref.sop_instance_uid, reason] for ref, reason in report.result.failed],
    }
    return json.dumps(document).encode("utf-8")


def decoded(payload: bytes) -> Report:
    document = json.loads(payload)
    result = CommitmentResult(
        committed=[Reference(sop_class, sop_instance) for sop_class, sop_instance in document["committed"]],
        failed=[
            (Reference(sop_class, sop_instance), int(reason)) for sop_class, sop_instance, reason in document["failed"]
        ],
    )
    return Report(int(document["request_id"]), document["transaction_uid"], result)


def mark_reported(engine: Engine, request_id: int) -> None:
    """The modality acknowledged the report."""
    with engine.begin() as connection:
        connection.execute(
            update(commitment_request)
            .where(commitment_request.c.id == request_id)
            .values(status=REPORTED, reported_at=datetime.now(UTC))
        )
