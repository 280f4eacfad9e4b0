"""Forwarding rules, routing off the change feed, the outbox's batches and retry-now, the choice of
priors, and the stuck-queue finding: on a real index, with the real domain functions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from appliance.archive import changes
from appliance.config import ForwardRule, development_config
from appliance.forward import queues
from appliance.forward.prefetch import PriorsRequest, chosen_priors, years_before
from appliance.forward.routing import route_new_instances
from appliance.forward.rules import InstanceFacts, destinations, matches
from appliance.monitor.findings import Severity
from appliance.monitor.outbox import check
from appliance.outbox import PARKED, PENDING, Attempt, Outcome, RetryPolicy, due_batch, messages, next_due, record_batch

CT = "1.2.840.10008.5.1.4.1.1.2"


def rule(destination: str = "PACS", **criteria: tuple[str, ...]) -> ForwardRule:
    values = {"calling_ae_titles": (), "modalities": (), "sop_classes": (), "study_descriptions": ()} | criteria
    return ForwardRule(name="r", destination=destination, enabled=True, **values)


FACTS = InstanceFacts("CT_SALLE1", "CT", CT, "Scanner thoracique")


def test_every_criterion_set_must_match_wildcards_case_and_accents_aside() -> None:
    assert matches(rule(), FACTS)
    assert matches(rule(calling_ae_titles=("CT_*",), modalities=("ct",), study_descriptions=("*THORACI*",)), FACTS)
    assert matches(rule(study_descriptions=("scanner thoracique",)), FACTS)
    assert not matches(rule(modalities=("MR",)), FACTS)
    assert not matches(rule(calling_ae_titles=("MR_?",)), FACTS)
    assert not matches(rule(sop_classes=("1.2.3",)), FACTS)


def test_each_destination_once_and_never_back_to_the_sender() -> None:
    rules = [rule("PACS"), rule("PACS", modalities=("CT",)), rule("AVIS"), rule("CT_SALLE1")]
    assert destinations(rules, FACTS) == ["PACS", "AVIS"]


def queue(engine: Engine, count: int) -> None:
    with engine.begin() as connection:
        for number in range(count):
            queues.queue(connection, "PACS", queues.Forwarded(f"1.2.3.{number}", "1.2.3"), "r")
        assert not queues.queue(connection, "PACS", queues.Forwarded("1.2.3.0", "1.2.3"), "r")  # never twice


def test_a_batch_takes_the_due_messages_behind_the_head_and_retry_now_makes_them_due(engine: Engine) -> None:
    queue(engine, 5)
    head = next_due(engine, ("forward",))
    assert head is not None
    batch = due_batch(engine, head, 3)
    assert [message.id for message in batch] == [head.id, head.id + 1, head.id + 2]
    attempts = [Attempt(Outcome.DELIVERED), Attempt(Outcome.REFUSED, "status A700"), Attempt(Outcome.NO_ANSWER)]
    assert record_batch(engine, list(zip(batch, attempts, strict=True)), RetryPolicy(60, 60, 1)) == [
        "delivered", PARKED, PENDING,
    ]  # fmt: skip
    (state,) = queues.queue_states(engine, ["PACS"])
    assert (state.pending, state.parked) == (3, 1)
    assert queues.retry_now(engine, "PACS") == 4
    assert len(messages(engine, PENDING, "forward:PACS")) == 4


def test_a_stuck_queue_is_a_finding_naming_its_destination(engine: Engine) -> None:
    queue(engine, 2)
    later = datetime.now(UTC) + timedelta(hours=2)
    (finding,) = check(engine, later)
    assert finding.severity is Severity.WARNING and "transférer vers PACS" in finding.message
    (finding,) = check(engine)
    assert finding.severity is Severity.OK


def test_routing_is_read_once_from_the_feed(engine: Engine, tmp_path: Path) -> None:
    with engine.begin() as connection:
        changes.publish(connection, changes.INSTANCE_STORED, "1.2.3", datetime.now(UTC), sop_instance_uid="9.9")
    config = development_config(tmp_path / "data")
    assert route_new_instances(engine, config) == 1  # an instance no longer indexed: nothing queued
    assert route_new_instances(engine, config) == 0
    assert messages(engine, PENDING) == []


REQUEST = PriorsRequest("IPP1", "", ("CT",), "Scanner thorax sans injection", True, "20200101", 2, "9.9.9", "A1")


def answer(uid: str, day: str, modalities: str, description: str, patient_id: str = "IPP1") -> dict[str, str]:
    return {"StudyInstanceUID": uid, "StudyDate": day, "ModalitiesInStudy": modalities,
            "StudyDescription": description, "PatientID": patient_id}  # fmt: skip


def test_priors_of_the_modality_region_and_period_most_recent_first() -> None:
    answers = [
        answer("1", "20230101", "CT", "TDM THORAX"),
        answer("2", "20240101", "CT\\SR", "Scanner du thorax"),
        answer("3", "20250101", "CT", "Scanner thorax"),  # archived already
        answer("4", "20240601", "MR", "IRM thorax"),  # another modality
        answer("5", "20190101", "CT", "Scanner thorax"),  # too old
        answer("6", "20240701", "CT", "Scanner genou"),  # another region
        answer("9.9.9", "20250201", "CT", "Scanner thorax"),  # the order's own study
        answer("7", "20240801", "CT", "Scanner thorax", "OTHER"),  # another patient
    ]
    assert chosen_priors(REQUEST, answers, archived={"3"}) == ["2", "1"]


def test_years_back_from_a_leap_day() -> None:
    assert years_before(date(2028, 2, 29), 5) == date(2023, 2, 28)
