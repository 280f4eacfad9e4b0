"""Instances counted by patient, study and SOP class for the audit messages of retrieves and
forwards (`tally_of`): the same tally as adding them one by one."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import NamedTuple

import pytest
from sqlalchemy import Engine, insert

from appliance.audit import subjects
from appliance.audit.subjects import InstanceTally, StudySubject, study_subjects, tally_of
from appliance.db.schema import patient, study

CT, MR = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4"
SUBJECTS = {
    "1.2.3.1": StudySubject("1.2.3.1", "ACC1", "P1", "", "DUPONT^JEAN"),
    "1.2.3.2": StudySubject("1.2.3.2", "ACC2", "P1", "", "DUPONT^JEAN"),
    "1.2.3.3": StudySubject("1.2.3.3", "ACC3", "P2", "1.2.250.1.213.1.4.8", "MARTIN^ANNE"),
}


class Item(NamedTuple):
    study_instance_uid: str
    sop_class_uid: str


def one_by_one(instances: list[tuple[str, str, bool]]) -> InstanceTally:
    tally = InstanceTally()
    for study_uid, sop_class_uid, done in instances:
        subject = SUBJECTS.get(study_uid, StudySubject(study_uid, "", "", "", ""))
        tally.add(subject, sop_class_uid, done)
    return tally


def test_counted_by_study_and_class_first_the_tally_is_the_same() -> None:
    choices = random.Random(14)
    studies = [*SUBJECTS, "1.2.3.9"]  # the last one unknown to the index: a blank patient
    instances = [(choices.choice(studies), choices.choice((CT, MR)), choices.random() > 0.1) for _ in range(300)]
    sent = [Item(study_uid, sop_class_uid) for study_uid, sop_class_uid, done in instances if done]
    failed = [Item(study_uid, sop_class_uid) for study_uid, sop_class_uid, done in instances if not done]
    tally = tally_of(SUBJECTS, sent, failed)
    assert tally == one_by_one(instances)
    assert tally.total == 300
    objects = {key: counted.objects(key) for key, counted in tally.patients.items()}
    assert objects == {key: counted.objects(key) for key, counted in one_by_one(instances).patients.items()}


def test_failures_count_for_their_patient_and_no_study() -> None:
    tally = tally_of(SUBJECTS, [Item("1.2.3.1", CT)], [Item("1.2.3.1", CT), Item("1.2.3.2", MR)])
    ((key, counted),) = tally.patients.items()
    assert key.startswith("P1") and (counted.done, counted.failed) == (1, 2)
    assert list(counted.studies) == ["1.2.3.1"] and counted.studies["1.2.3.1"].instances == {CT: 1}


def test_studies_are_looked_up_in_batches(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The studies' patients and accession numbers, a study the index lacks left out, in batches of
    `LOOKUP_BATCH`."""
    moment = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
    with engine.begin() as connection:
        for number in range(12):
            patient_pk = connection.execute(
                insert(patient).values(
                    patient_id=f"P{number}",
                    issuer_of_patient_id="1.2.250.1.213.1.4.8" if number % 2 else "",
                    patient_name=f"PATIENT^{number}",
                    created_at=moment,
                    updated_at=moment,
                )
            ).inserted_primary_key[0]
            connection.execute(
                insert(study).values(
                    patient_pk=patient_pk,
                    study_instance_uid=f"1.2.3.{number}",
                    accession_number=f"ACC{number}" if number % 3 else "",
                    received_at=moment,
                    updated_at=moment,
                )
            )
    wanted = [f"1.2.3.{number}" for number in range(12)] + ["1.2.3.99"]
    few = study_subjects(engine, [*wanted[:2], "1.2.3.99"])
    monkeypatch.setattr(subjects, "LOOKUP_BATCH", 5)
    many = study_subjects(engine, wanted)
    assert few == {uid: many[uid] for uid in wanted[:2]}
    assert many["1.2.3.1"] == StudySubject("1.2.3.1", "ACC1", "P1", "1.2.250.1.213.1.4.8", "PATIENT^1")
    assert many["1.2.3.3"].accession_number == "" and "1.2.3.99" not in many and len(many) == 12
