"""The day's worklist for the console: every step of a day with its status, per station, and a
modality's own view of it (the worklist SCP's answers, through its profile)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import Engine
from worklist_data import add_patient, add_ris_patient, new_order, schedule

from appliance.config import Config
from appliance.config.loader import config_from_document
from appliance.worklist import performed
from appliance.worklist.day_list import day_stations, day_steps, modality_preview
from appliance.worklist.orders import OrderControl

DAY = date(2026, 12, 3)


@pytest.fixture()
def config() -> Config:
    ultrasound = {
        "ae_title": "US_SALLE3",
        "character_set": "ASCII",
        "patient_name_case": "upper",
        "patient_name_components": ["family", "given"],
    }
    return config_from_document({"worklist": {"profiles": [ultrasound, {"ae_title": "MG_SALLE4"}]}}, "test")


@pytest.fixture()
def day(engine: Engine, config: Config) -> Engine:
    """DUPONT Marie-Hélène (from the RIS) at 09:30 on US_SALLE3 and 11:30 on CT_SALLE1 (started);
    ŒUVRARD Chloé at 10:30 on US_SALLE3 (cancelled), and the next day on US_SALLE3."""
    dupont = add_ris_patient(engine, "IPP1", ("DUPONT", "Marie-Hélène"))
    oeuvrard = add_patient(engine, "IPP2", "ŒUVRARD^Chloé")
    schedule(engine, config, new_order(0, "US", "US_SALLE3", day=DAY, procedure_description="Échographie"), dupont)
    schedule(engine, config, new_order(1, "US", "US_SALLE3", day=DAY), oeuvrard)
    schedule(engine, config, new_order(2, "CT", "CT_SALLE1", day=DAY), dupont)
    schedule(engine, config, new_order(3, "US", "US_SALLE3", day=DAY + timedelta(days=1)), oeuvrard)
    schedule(engine, config, new_order(1, "US", "US_SALLE3", day=DAY, control=OrderControl.CANCEL), oeuvrard)
    started = Dataset()
    started.PerformedProcedureStepStatus = "IN PROGRESS"
    item = Dataset()
    item.AccessionNumber = "ACC00002"
    started.ScheduledStepAttributesSequence = [item]
    performed.create(engine, generate_uid(), started, "CT_SALLE1")
    return engine


def test_every_step_of_the_day_with_its_status(day: Engine) -> None:
    steps = day_steps(day, DAY)
    assert [(step.start_time, step.station_ae_title, step.status, step.accession_number) for step in steps] == [
        ("09:30", "US_SALLE3", "SCHEDULED", "ACC00000"),
        ("10:30", "US_SALLE3", "CANCELLED", "ACC00001"),
        ("11:30", "CT_SALLE1", "IN PROGRESS", "ACC00002"),
    ]
    assert steps[0].patient_display_name == "DUPONT Marie-Hélène" and steps[0].procedure == "Échographie"
    assert steps[1].patient_display_name == "ŒUVRARD Chloé" and steps[1].patient_id == "IPP2"
    assert [step.accession_number for step in day_steps(day, DAY, modality="CT")] == ["ACC00002"]
    assert [step.accession_number for step in day_steps(day, DAY, station_ae_title="US_SALLE3")] == [
        "ACC00000",
        "ACC00001",
    ]
    assert day_steps(day, DAY - timedelta(days=1)) == []


def test_stations_offered_are_those_of_the_day_and_those_with_a_profile(day: Engine, config: Config) -> None:
    assert day_stations(day, DAY, config.worklist) == ["CT_SALLE1", "MG_SALLE4", "US_SALLE3"]


def test_the_ultrasound_sees_its_own_items_without_accents(day: Engine, config: Config) -> None:
    preview = modality_preview(day, config.worklist, "US_SALLE3", DAY)
    assert preview.has_own_profile and preview.profile.character_set == "ASCII"
    (item,) = preview.items  # the cancelled step is not sent, the CT's is another station's
    assert item.patient_name == "DUPONT^MARIE-HELENE"
    assert (item.patient_id, item.accession_number, item.start_date, item.station_ae_title) == (
        "IPP1",
        "ACC00000",
        "20261203",
        "US_SALLE3",
    )
    assert item.requested_procedure == "Echographie"


def test_a_modality_without_profile_gets_the_default_one(day: Engine, config: Config) -> None:
    preview = modality_preview(day, config.worklist, "CT_SALLE1", DAY)
    assert not preview.has_own_profile and preview.profile.character_set == "ISO_IR 192"
    (item,) = preview.items  # in progress: still sent
    assert item.patient_name == "DUPONT^Marie-Hélène" and item.accession_number == "ACC00002"
