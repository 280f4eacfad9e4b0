"""Whose data an operation touched, in the shape audit messages want: instances counted by patient,
study and SOP class (`InstanceTally`, one message per patient, PS3.15 A.5.3.7), and the patient and
accession number of archived studies looked up in the index (`study_subjects`, for retrieves).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Engine, select

from appliance.audit.events import ParticipantObject, patient, patient_number, study
from appliance.db.schema import patient as patient_table
from appliance.db.schema import study as study_table

LOOKUP_BATCH = 500


@dataclass(frozen=True)
class StudySubject:
    """An archived study and its patient, as the index holds them now."""

    study_uid: str
    accession_number: str
    patient_id: str
    issuer: str
    patient_name: str


@dataclass
class StudyCount:
    accession_number: str
    instances: Counter[str] = field(default_factory=Counter)  # SOP class UID -> count


@dataclass
class PatientCount:
    """One patient's share of an operation: its name, studies, and instances done and failed."""

    name: str
    studies: dict[str, StudyCount] = field(default_factory=dict)
    done: int = 0
    failed: int = 0

    def objects(self, patient_id: str) -> tuple[ParticipantObject, ...]:
        """The patient object, then one study object per study with its instances by SOP class."""
        studies = tuple(
            study(uid, found.accession_number, tuple(sorted(found.instances.items())))
            for uid, found in sorted(self.studies.items())
        )
        return (patient(patient_id, self.name), *studies)


@dataclass
class InstanceTally:
    """Instances of one operation by patient (key: patient number in CX form); failures without a
    known patient are counted apart (`unattributed_failures`)."""

    patients: dict[str, PatientCount] = field(default_factory=dict)
    unattributed_failures: int = 0

    def add(self, subject: StudySubject, sop_class_uid: str, done: bool, count: int = 1) -> None:
        key = patient_number(subject.patient_id, subject.issuer)
        counted = self.patients.setdefault(key, PatientCount(subject.patient_name))
        if not done:
            counted.failed += count
            return
        counted.done += count
        entry = counted.studies.setdefault(subject.study_uid, StudyCount(subject.accession_number))
        entry.instances[sop_class_uid] += count

    def fail_unattributed(self) -> None:
        self.unattributed_failures += 1

    @property
    def total(self) -> int:
        return sum(found.done + found.failed for found in self.patients.values()) + self.unattributed_failures


class Instance(Protocol):
    """An archived instance as the tallies read it (a retrieve's item, say)."""

    @property
    def study_instance_uid(self) -> str: ...

    @property
    def sop_class_uid(self) -> str: ...


def tally_of(
    subjects: Mapping[str, StudySubject], sent: Iterable[Instance], failed: Iterable[Instance] = ()
) -> InstanceTally:
    """The tally of the instances `sent` and `failed`, each study's patient as `subjects` has it
    (blank when it does not). Counted by study and class first: a retrieve hands over hundreds of
    instances of one study, and adding them one by one took 0.3 ms for 200 (a patient number made
    for each)."""
    counted = Counter(
        (instance.study_instance_uid, instance.sop_class_uid, done)
        for instances, done in ((sent, True), (failed, False))
        for instance in instances
    )
    tally = InstanceTally()
    for (study_uid, sop_class_uid, done), count in counted.items():
        subject = subjects.get(study_uid) or StudySubject(study_uid, "", "", "", "")
        tally.add(subject, sop_class_uid, done, count)
    return tally


def study_subjects(engine: Engine, study_uids: Iterable[str]) -> dict[str, StudySubject]:
    """Each known study of `study_uids` with its accession number and its patient."""
    wanted = sorted(set(study_uids))
    found: dict[str, StudySubject] = {}
    statement = select(
        study_table.c.study_instance_uid,
        study_table.c.accession_number,
        patient_table.c.patient_id,
        patient_table.c.issuer_of_patient_id,
        patient_table.c.patient_name,
    ).select_from(study_table.join(patient_table, study_table.c.patient_pk == patient_table.c.id))
    with engine.connect() as connection:
        for start in range(0, len(wanted), LOOKUP_BATCH):
            batch = wanted[start : start + LOOKUP_BATCH]
            for row in connection.execute(statement.where(study_table.c.study_instance_uid.in_(batch))):
                found[row[0]] = StudySubject(*(str(value or "") for value in row))
    return found
