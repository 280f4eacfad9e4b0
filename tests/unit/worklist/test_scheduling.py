"""Orders applied to the worklist: new, change, cancel, discontinue, status; UIDs and stations."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select
from worklist_data import add_patient, new_order, schedule

from appliance.config import Config
from appliance.config.loader import config_from_document
from appliance.db.schema import scheduled_step
from appliance.worklist.orders import OrderControl, OrderOutcome


@pytest.fixture()
def config() -> Config:
    stations = [{"ae_title": "CT_SALLE1", "modality": "CT", "room": "SALLE1"}, {"ae_title": "MR_ANY", "modality": "MR"}]
    return config_from_document({"worklist": {"stations": stations}}, "test")


def steps(engine: Engine) -> list[dict]:
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(select(scheduled_step).order_by(scheduled_step.c.id))]


def test_new_order_is_scheduled_with_a_generated_study_uid_and_mapped_station(engine: Engine, config: Config) -> None:
    patient_pk = add_patient(engine, "IPP1", "ŒUVRARD^Chloé")
    result = schedule(engine, config, new_order(1), patient_pk)
    assert result.outcome is OrderOutcome.SCHEDULED
    (step,) = steps(engine)
    assert step["study_instance_uid"] == result.study_instance_uid and step["study_instance_uid"].startswith("2.25.")
    assert step["scheduled_station_ae_title"] == "CT_SALLE1"
    assert (step["status"], step["accession_number"], step["modality"]) == ("SCHEDULED", "ACC00001", "CT")


def test_study_uid_and_station_from_the_order_win(engine: Engine, config: Config) -> None:
    patient_pk = add_patient(engine, "IPP1", "MARTIN^Noël")
    order = new_order(2, modality="MR", station="MR_SALLE3", study_instance_uid="1.2.250.1.59.1")
    schedule(engine, config, order, patient_pk)
    (step,) = steps(engine)
    assert (step["study_instance_uid"], step["scheduled_station_ae_title"]) == ("1.2.250.1.59.1", "MR_SALLE3")


def test_change_cancel_and_refusals(engine: Engine, config: Config) -> None:
    patient_pk = add_patient(engine, "IPP1", "DUPONT^Jean")
    schedule(engine, config, new_order(3), patient_pk)
    changed = schedule(
        engine, config, new_order(3, control=OrderControl.CHANGE, procedure_description="Scanner abdo"), patient_pk
    )
    assert changed.outcome is OrderOutcome.UPDATED
    assert steps(engine)[0]["requested_procedure_description"] == "Scanner abdo"
    assert (
        schedule(engine, config, new_order(3, control=OrderControl.CANCEL), patient_pk).outcome
        is OrderOutcome.CANCELLED
    )
    assert steps(engine)[0]["status"] == "CANCELLED"
    again = schedule(engine, config, new_order(3, control=OrderControl.CHANGE), patient_pk)
    assert again.outcome is OrderOutcome.REFUSED
    unknown = schedule(engine, config, new_order(99, control=OrderControl.CANCEL), patient_pk)
    assert unknown.outcome is OrderOutcome.UNKNOWN_ORDER


def test_status_change_and_discontinue(engine: Engine, config: Config) -> None:
    patient_pk = add_patient(engine, "IPP1", "DUPONT^Jean")
    schedule(engine, config, new_order(4), patient_pk)
    assert (
        schedule(engine, config, new_order(4, control=OrderControl.STATUS, order_status="IP"), patient_pk).outcome
        is OrderOutcome.UPDATED
    )
    assert steps(engine)[0]["status"] == "IN PROGRESS"
    refused = schedule(engine, config, new_order(4, control=OrderControl.CANCEL), patient_pk)
    assert refused.outcome is OrderOutcome.REFUSED
    assert (
        schedule(engine, config, new_order(4, control=OrderControl.DISCONTINUE), patient_pk).outcome
        is OrderOutcome.DISCONTINUED
    )
    assert steps(engine)[0]["status"] == "DISCONTINUED"


def test_a_repeated_new_order_updates_instead_of_duplicating(engine: Engine, config: Config) -> None:
    patient_pk = add_patient(engine, "IPP1", "DUPONT^Jean")
    schedule(engine, config, new_order(5), patient_pk)
    assert schedule(engine, config, new_order(5), patient_pk).outcome is OrderOutcome.UPDATED
    assert len(steps(engine)) == 1
