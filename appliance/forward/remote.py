"""Remote archives as query/retrieve peers (priors): the console's searches, and the studies to
fetch from them.

- A search: the console writes it (`submit`) and polls it (`get`); the worker claims it
  (`claim_next`), runs the C-FIND through the DICOM edge and writes the answers (`finish`). Neither
  the console nor the domain speaks DICOM; the page stays responsive whatever the remote does.
- A fetch: one outbox message per remote archive and study (`retrieve:<AE>`, cause `study:<UID>`:
  asked twice, fetched once), delivered by the worker as a C-MOVE to the archive's own AE title,
  retried with backoff across restarts like every outbox message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from appliance.db import as_utc
from appliance.db.schema import remote_query
from appliance.outbox import enqueue

WAITING = "waiting"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
RETRIEVE_CHANNEL = "retrieve"
MOVE = "C-MOVE"
KEPT_FOR = timedelta(days=1)
# What the console may search on, at the study level (PS3.4 C.6.2.1), and what it asks back.
SEARCH_KEYS = ("PatientID", "PatientName", "StudyDate", "ModalitiesInStudy", "AccessionNumber")
RETURN_KEYS = (
    "StudyInstanceUID", "PatientID", "IssuerOfPatientID", "PatientName", "PatientBirthDate", "StudyDate",
    "StudyTime", "AccessionNumber", "StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedInstances",
)  # fmt: skip


@dataclass(frozen=True)
class RemoteQuery:
    """One search of a remote archive and, once done, its answers (one mapping per study)."""

    id: int
    peer_ae_title: str
    keys: Mapping[str, str]
    state: str
    answers: tuple[Mapping[str, str], ...]
    error: str
    requested_by: str
    created_at: datetime
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.state in (DONE, FAILED)


@dataclass(frozen=True)
class Fetch:
    """A study to bring from a remote archive (no patient data but its identifiers)."""

    study_instance_uid: str
    patient_id: str = ""
    reason: str = ""  # "console", "prefetch for order ..."


def now() -> datetime:
    return datetime.now(UTC)


def query_of(row: Mapping[Any, Any]) -> RemoteQuery:
    values = {str(key): value for key, value in row.items()}
    values["keys"] = json.loads(values["keys"] or "{}")
    values["answers"] = tuple(json.loads(values["answers"] or "[]"))
    values["created_at"] = as_utc(values["created_at"])
    values["finished_at"] = as_utc(values["finished_at"]) if values["finished_at"] else None
    return RemoteQuery(**values)


def submit(engine: Engine, peer_ae_title: str, keys: Mapping[str, str], requested_by: str) -> int:
    """Queue a search of `peer_ae_title` with the study-level `keys`; return its id."""
    kept = {key: str(value) for key, value in keys.items() if key in SEARCH_KEYS and str(value).strip()}
    values = {
        "peer_ae_title": peer_ae_title,
        "keys": json.dumps(kept, ensure_ascii=False),
        "state": WAITING,
        "requested_by": requested_by[:64],
        "created_at": now(),
    }
    with engine.begin() as connection:
        key = connection.execute(insert(remote_query).values(values)).inserted_primary_key
    assert key is not None
    return int(key[0])


def get(engine: Engine, query_id: int) -> RemoteQuery | None:
    with engine.connect() as connection:
        row = connection.execute(select(remote_query).where(remote_query.c.id == query_id)).first()
    return query_of(row._mapping) if row else None


def claim_next(engine: Engine) -> RemoteQuery | None:
    """The oldest waiting search, now running (None when there is none or another worker took it)."""
    with engine.begin() as connection:
        row = connection.execute(
            select(remote_query).where(remote_query.c.state == WAITING).order_by(remote_query.c.id).limit(1)
        ).first()
        if row is None:
            return None
        claimed = connection.execute(
            update(remote_query)
            .where(remote_query.c.id == row.id, remote_query.c.state == WAITING)
            .values(state=RUNNING)
        ).rowcount
    return query_of({**row._mapping, "state": RUNNING}) if claimed else None


def finish(engine: Engine, query_id: int, answers: list[dict[str, str]] | None, error: str = "") -> None:
    """Write a search's answers, or why it failed (`answers` None)."""
    values = {
        "state": FAILED if answers is None else DONE,
        "answers": json.dumps(answers or [], ensure_ascii=False),
        "error": error[:2000],
        "finished_at": now(),
    }
    with engine.begin() as connection:
        connection.execute(update(remote_query).where(remote_query.c.id == query_id).values(values))


def fail_interrupted(engine: Engine) -> int:
    """At the worker's start: searches left running by a worker that died are failed."""
    with engine.begin() as connection:
        result = connection.execute(
            update(remote_query)
            .where(remote_query.c.state == RUNNING)
            .values(state=FAILED, error="interrupted: the worker stopped", finished_at=now())
        )
    return int(result.rowcount or 0)


def purge_finished(engine: Engine, moment: datetime | None = None) -> int:
    """Remove the searches ended more than a day ago (their answers name patients)."""
    cutoff = (moment or now()) - KEPT_FOR
    with engine.begin() as connection:
        result = connection.execute(
            delete(remote_query).where(remote_query.c.finished_at.is_not(None), remote_query.c.finished_at < cutoff)
        )
    return int(result.rowcount or 0)


def retrieve_channel(peer_ae_title: str) -> str:
    return f"{RETRIEVE_CHANNEL}:{peer_ae_title}"


def queue_fetch(connection: Connection, peer_ae_title: str, fetch: Fetch) -> bool:
    """Queue a study to fetch from `peer_ae_title`, inside the caller's transaction; False when it
    was asked for before."""
    payload = json.dumps({"study_instance_uid": fetch.study_instance_uid, "patient_id": fetch.patient_id}).encode()
    summary = f"study {fetch.study_instance_uid} ({fetch.reason or 'fetch'})"
    return enqueue(connection, retrieve_channel(peer_ae_title), f"study:{fetch.study_instance_uid}", MOVE, payload,
                   summary)  # fmt: skip


def fetch_of(payload: bytes) -> Fetch:
    document = json.loads(payload)
    return Fetch(str(document["study_instance_uid"]), str(document.get("patient_id", "")))


def fetch_study(engine: Engine, peer_ae_title: str, fetch: Fetch) -> bool:
    """Queue a fetch in its own transaction (the console's button); False when asked before."""
    with engine.begin() as connection:
        return queue_fetch(connection, peer_ae_title, fetch)
