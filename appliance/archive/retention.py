"""Retention (R2): which studies have passed their retention date, legal holds, and the purge an
administrator confirms. Nothing here ever runs by itself: the console lists, a person decides.

The date: a study may go once `retention.years` have passed since its exam date (Study Date, else
the day it was received) *and* its patient has reached `retention.until_age` (28: article R. 1112-7
of the code de la santé publique extends the keeping of a minor's record to their 28th birthday). A
patient without a known birth date is never listed while the age rule is on. A frozen study (legal
hold: who, when, why) is never listed and cannot be purged.

The purge of one study, in an order a crash cannot make half-visible:
1. **mark** (one transaction): the study gets `purge_requested_at/by` and the reason; from then on
   no query, retrieve or page shows it (`archive.search.joined_tables` leaves it out);
2. **announce**: the caller records the DICOM Study Deleted audit event (110105), then
   `purge_recorded_at` is set, so that a restart never records it twice (a crash between the event
   and the flag is the one case that records it twice, never zero times);
3. **files**: the study's files are removed, under `archive/` and in the deferred tier;
4. **rows**: instances (headers, metadata), series and the study are deleted in one transaction.
A crash after 1 leaves a marked study: `complete_interrupted` (the worker's start, the console's
retention page) runs 2 to 4 again for it; each step is idempotent. The patient stays (patients come
from the RIS and may have other studies).

Getting a study back after a purge: `appliance backup restore studies --study <Study Instance UID>` (see
`appliance/backup/README.md`), from the nightly backups.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, select, update

from appliance.archive.deferred import DeferredStore
from appliance.archive.storage import IMMEDIATE, FileStore, parse_dicom_date, sync_directory
from appliance.archive.tiers import exam_date_before, years_before
from appliance.config import RetentionConfig
from appliance.db.schema import instance, instance_header, instance_metadata, patient, series, study
from appliance.patients.names import french_name

LISTED = 500  # studies shown at once on the retention page


class RetentionError(Exception):
    """A retention action refused; the message says why (for the log; the console words its own)."""


class NoSuchStudy(RetentionError):
    pass


class Frozen(RetentionError):
    """The study is on legal hold."""


class NotExpired(RetentionError):
    """The study has not reached its retention date."""


class ReasonMissing(RetentionError):
    pass


@dataclass(frozen=True)
class Policy:
    years: int
    until_age: int  # 0: no age rule

    @classmethod
    def of(cls, config: RetentionConfig) -> Policy:
        return cls(config.years, config.until_age)


@dataclass(frozen=True)
class RetainedStudy:
    """A study as the retention page lists it, and what the audit event of its purge names."""

    study_instance_uid: str
    exam_date: date
    study_description: str
    accession_number: str
    modalities: str
    instances: int
    size_bytes: int
    patient_id: str
    issuer_of_patient_id: str
    patient_name: str
    birth_date: date | None
    deletable_from: date | None  # None: kept indefinitely (birth date unknown under the age rule)
    frozen_at: datetime | None = None
    frozen_by: str = ""
    frozen_reason: str = ""
    purge_recorded: bool = False
    sop_classes: tuple[tuple[str, int], ...] = ()

    @property
    def patient_display_name(self) -> str:
        return french_name(self.patient_name)


def deletable_from(policy: Policy, exam_date: date, birth_date: date | None) -> date | None:
    """The first day a study may be purged, or None while it must be kept indefinitely."""
    by_years = years_later(exam_date, policy.years)
    if not policy.until_age:
        return by_years
    if birth_date is None:
        return None
    return max(by_years, years_later(birth_date, policy.until_age))


def years_later(day: date, years: int) -> date:
    """The same day `years` later (29 February becomes 1 March: never earlier than due)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return date(day.year + years, 3, 1)


STUDY_COLUMNS = (
    study.c.id,
    study.c.study_instance_uid,
    study.c.study_date,
    study.c.received_at,
    study.c.study_description,
    study.c.accession_number,
    study.c.modalities_in_study,
    study.c.number_of_instances,
    study.c.size_bytes,
    study.c.frozen_at,
    study.c.frozen_by,
    study.c.frozen_reason,
    study.c.purge_recorded_at,
    patient.c.patient_id,
    patient.c.issuer_of_patient_id,
    patient.c.patient_name,
    patient.c.patient_birth_date,
)


def retained(policy: Policy, row: Any) -> RetainedStudy:
    exam_date = parse_dicom_date(row.study_date) or row.received_at.date()
    birth_date = parse_dicom_date(row.patient_birth_date or "")
    return RetainedStudy(
        study_instance_uid=row.study_instance_uid,
        exam_date=exam_date,
        study_description=row.study_description,
        accession_number=row.accession_number,
        modalities=str(row.modalities_in_study).replace("\\", ", "),
        instances=row.number_of_instances,
        size_bytes=row.size_bytes,
        patient_id=row.patient_id,
        issuer_of_patient_id=row.issuer_of_patient_id,
        patient_name=row.patient_name,
        birth_date=birth_date,
        deletable_from=deletable_from(policy, exam_date, birth_date),
        frozen_at=row.frozen_at,
        frozen_by=row.frozen_by,
        frozen_reason=row.frozen_reason,
        purge_recorded=row.purge_recorded_at is not None,
    )


def expired_studies(engine: Engine, policy: Policy, today: date, limit: int = LISTED) -> list[RetainedStudy]:
    """The studies past their retention date on `today`, not frozen, oldest exam first (at most
    `limit`). Nothing is deleted: this is the list an administrator reviews."""
    statement = (
        select(*STUDY_COLUMNS)
        .join(patient, patient.c.id == study.c.patient_pk)
        .where(
            exam_date_before(years_before(today, policy.years) + (date.resolution)),
            study.c.frozen_at.is_(None),
            study.c.purge_requested_at.is_(None),
        )
        .order_by(study.c.study_date, study.c.id)
    )
    found: list[RetainedStudy] = []
    with engine.connect() as connection:
        for row in connection.execute(statement):
            candidate = retained(policy, row)
            if candidate.deletable_from is not None and candidate.deletable_from <= today:
                found.append(candidate)
                if len(found) >= limit:
                    break
    return found


def frozen_studies(engine: Engine, policy: Policy) -> list[RetainedStudy]:
    """Every study on legal hold, the latest hold first."""
    statement = (
        select(*STUDY_COLUMNS)
        .join(patient, patient.c.id == study.c.patient_pk)
        .where(study.c.frozen_at.isnot(None), study.c.purge_requested_at.is_(None))
        .order_by(study.c.frozen_at.desc())
    )
    with engine.connect() as connection:
        return [retained(policy, row) for row in connection.execute(statement)]


def retained_study(engine: Engine, policy: Policy, study_instance_uid: str) -> RetainedStudy | None:
    """One study with its retention date and hold (purge-marked ones too), or None."""
    statement = (
        select(*STUDY_COLUMNS)
        .join(patient, patient.c.id == study.c.patient_pk)
        .where(study.c.study_instance_uid == study_instance_uid)
    )
    with engine.connect() as connection:
        row = connection.execute(statement).first()
        if row is None:
            return None
        found = retained(policy, row)
        return replace(found, sop_classes=sop_classes(connection, row.id))


def sop_classes(connection: Connection, study_pk: int) -> tuple[tuple[str, int], ...]:
    statement = (
        select(instance.c.sop_class_uid, func.count())
        .join(series, series.c.id == instance.c.series_pk)
        .where(series.c.study_pk == study_pk)
        .group_by(instance.c.sop_class_uid)
        .order_by(instance.c.sop_class_uid)
    )
    return tuple((str(uid), int(count)) for uid, count in connection.execute(statement))


def freeze(engine: Engine, study_instance_uid: str, by: str, reason: str, moment: datetime | None = None) -> None:
    """Put a study on legal hold. Raises ReasonMissing, NoSuchStudy."""
    if not reason.strip():
        raise ReasonMissing("a legal hold needs a reason")
    values = {"frozen_at": moment or datetime.now(UTC), "frozen_by": by, "frozen_reason": reason.strip()}
    with engine.begin() as connection:
        result = connection.execute(
            update(study)
            .where(study.c.study_instance_uid == study_instance_uid, study.c.purge_requested_at.is_(None))
            .values(**values)
        )
    if not result.rowcount:
        raise NoSuchStudy(study_instance_uid)


def unfreeze(engine: Engine, study_instance_uid: str) -> None:
    """Lift a legal hold. Raises NoSuchStudy."""
    with engine.begin() as connection:
        result = connection.execute(
            update(study)
            .where(study.c.study_instance_uid == study_instance_uid, study.c.frozen_at.isnot(None))
            .values(frozen_at=None, frozen_by="", frozen_reason="")
        )
    if not result.rowcount:
        raise NoSuchStudy(study_instance_uid)


Announce = Callable[[RetainedStudy, str, str], None]  # the study, who confirmed, the reason


def purge(
    engine: Engine,
    files: FileStore,
    deferred: DeferredStore | None,
    policy: Policy,
    study_instance_uid: str,
    by: str,
    reason: str,
    today: date,
    announce: Announce,
) -> RetainedStudy:
    """Purge one study an administrator confirmed: mark, announce (audit), files, rows.

    Raises ReasonMissing, NoSuchStudy, Frozen or NotExpired (nothing changed), OSError when a file
    cannot be removed (the study stays marked; `complete_interrupted` finishes it).
    """
    found = mark(engine, policy, study_instance_uid, by, reason, today)
    finish(engine, files, deferred, found, by, reason.strip(), announce)
    return found


def mark(engine: Engine, policy: Policy, study_instance_uid: str, by: str, reason: str, today: date) -> RetainedStudy:
    """Step 1: check the study may go and mark it (hidden from then on); what it was."""
    if not reason.strip():
        raise ReasonMissing("a purge needs a reason")
    found = retained_study(engine, policy, study_instance_uid)
    if found is None:
        raise NoSuchStudy(study_instance_uid)
    if found.frozen_at is not None:
        raise Frozen(study_instance_uid)
    if found.deletable_from is None or found.deletable_from > today:
        raise NotExpired(f"{study_instance_uid}: kept until {found.deletable_from or 'further notice'}")
    values = {"purge_requested_at": datetime.now(UTC), "purge_requested_by": by, "purge_reason": reason.strip()}
    with engine.begin() as connection:
        result = connection.execute(
            update(study)
            .where(
                study.c.study_instance_uid == study_instance_uid,
                study.c.frozen_at.is_(None),
                study.c.purge_requested_at.is_(None),
            )
            .values(**values)
        )
    if not result.rowcount:
        raise NoSuchStudy(study_instance_uid)  # frozen or purged by someone else meanwhile
    return found


def finish(
    engine: Engine,
    files: FileStore,
    deferred: DeferredStore | None,
    found: RetainedStudy,
    by: str,
    reason: str,
    announce: Announce,
) -> None:
    """Steps 2 to 4 for a marked study; each one done once even when run again."""
    if not found.purge_recorded:
        announce(found, by, reason)
        with engine.begin() as connection:
            connection.execute(
                update(study)
                .where(study.c.study_instance_uid == found.study_instance_uid)
                .values(purge_recorded_at=datetime.now(UTC))
            )
    remove_files(engine, files, deferred, found.study_instance_uid)
    delete_rows(engine, found.study_instance_uid)


def study_files(engine: Engine, study_instance_uid: str) -> list[Any]:
    statement = (
        select(instance.c.path, instance.c.tier, instance.c.location)
        .join(series, series.c.id == instance.c.series_pk)
        .join(study, study.c.id == series.c.study_pk)
        .where(study.c.study_instance_uid == study_instance_uid)
    )
    with engine.connect() as connection:
        return list(connection.execute(statement))


def remove_files(engine: Engine, files: FileStore, deferred: DeferredStore | None, study_instance_uid: str) -> int:
    """Step 3: remove the study's files (and any leftover original of a moved one); how many rows."""
    rows = study_files(engine, study_instance_uid)
    for row in rows:
        files.absolute(row.path).unlink(missing_ok=True)
        if row.tier != IMMEDIATE:
            if deferred is None or deferred.kind != row.tier:
                raise RetentionError(f"{row.location}: in the {row.tier} tier, which is not configured now")
            deferred.remove(row.location)
    for directory in {files.absolute(row.path).parent for row in rows}:
        with contextlib.suppress(FileNotFoundError):
            sync_directory(directory)
    return len(rows)


def delete_rows(engine: Engine, study_instance_uid: str) -> None:
    """Step 4: the study's instances (headers, metadata), series and study row, in one transaction."""
    study_pk = select(study.c.id).where(study.c.study_instance_uid == study_instance_uid).scalar_subquery()
    series_pks = select(series.c.id).where(series.c.study_pk == study_pk)
    instance_pks = select(instance.c.id).where(instance.c.series_pk.in_(series_pks))
    with engine.begin() as connection:
        connection.execute(delete(instance_header).where(instance_header.c.instance_pk.in_(instance_pks)))
        connection.execute(delete(instance_metadata).where(instance_metadata.c.instance_pk.in_(instance_pks)))
        connection.execute(delete(instance).where(instance.c.series_pk.in_(series_pks)))
        connection.execute(delete(series).where(series.c.study_pk == study_pk))
        connection.execute(
            delete(study).where(
                and_(study.c.study_instance_uid == study_instance_uid, study.c.purge_requested_at.isnot(None))
            )
        )


def complete_interrupted(
    engine: Engine, files: FileStore, deferred: DeferredStore | None, policy: Policy, announce: Announce
) -> list[str]:
    """Finish every purge a crash interrupted (marked studies still there); their UIDs."""
    statement = select(study.c.study_instance_uid, study.c.purge_requested_by, study.c.purge_reason).where(
        study.c.purge_requested_at.isnot(None)
    )
    with engine.connect() as connection:
        marked = list(connection.execute(statement))
    done = []
    for row in marked:
        found = retained_study(engine, policy, row.study_instance_uid)
        if found is not None:
            finish(engine, files, deferred, found, row.purge_requested_by, row.purge_reason, announce)
            done.append(row.study_instance_uid)
    return done
