"""The worklist page: the day's steps per station with their status, a modality's own view, who may
see it, one 110112 Query per page (date and modality, no patient key), and nothing of the patients
in the general log."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from console_client import Events
from flask.testing import FlaskClient
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import Engine
from worklist_data import add_patient, add_ris_patient, new_order, schedule

from appliance.accounts.roles import Role
from appliance.config import Config, Settings
from appliance.config.loader import config_from_document, development_document
from appliance.practice_time import today as practice_today
from appliance.worklist import performed
from appliance.worklist.orders import OrderControl


def config_with_profiles(data: Path) -> Config:
    document = development_document(data)
    ultrasound = {"ae_title": "US_SALLE3", "character_set": "ASCII", "patient_name_case": "upper"}
    document["worklist"]["profiles"] = [ultrasound]
    return config_from_document(document, "test")


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings(lambda: config_with_profiles(tmp_path / "data"))


@pytest.fixture()
def day(engine: Engine, settings: Settings) -> Engine:
    """Today: DUPONT Marie-Hélène on US_SALLE3 (scheduled) and CT_SALLE1 (started, then done);
    ŒUVRARD Chloé on US_SALLE3 (cancelled); tomorrow ŒUVRARD on MR_SALLE2."""
    config = settings.current
    dupont = add_ris_patient(engine, "IPP1", ("DUPONT", "Marie-Hélène"))
    oeuvrard = add_patient(engine, "IPP2", "ŒUVRARD^Chloé")
    today = practice_today()
    schedule(engine, config, new_order(0, "US", "US_SALLE3", day=today, procedure_description="Échographie"), dupont)
    schedule(engine, config, new_order(1, "US", "US_SALLE3", day=today), oeuvrard)
    schedule(engine, config, new_order(2, "CT", "CT_SALLE1", day=today), dupont)
    schedule(engine, config, new_order(3, "MR", "MR_SALLE2", day=today + timedelta(days=1)), oeuvrard)
    schedule(engine, config, new_order(1, "US", "US_SALLE3", day=today, control=OrderControl.CANCEL), oeuvrard)
    started = Dataset()
    started.PerformedProcedureStepStatus = "IN PROGRESS"
    item = Dataset()
    item.AccessionNumber = "ACC00002"
    started.ScheduledStepAttributesSequence = [item]
    uid = generate_uid()
    performed.create(engine, uid, started, "CT_SALLE1")
    done = Dataset()
    done.PerformedProcedureStepStatus = "COMPLETED"
    performed.modify(engine, uid, done)
    return engine


def queries(events: Events) -> list[dict[str, str]]:
    return [json.loads(event.objects[0].query) for event in events.of("110112")]


@pytest.mark.parametrize("role", [Role.SECRETARY, Role.TECHNOLOGIST, Role.RADIOLOGIST, Role.ADMINISTRATOR])
def test_clinical_roles_see_the_worklist(day: Engine, logged_in: Callable[[Role], FlaskClient], role: Role) -> None:
    assert logged_in(role).get("/worklist").status_code == 200


def test_maintenance_and_strangers_do_not(
    day: Engine, logged_in: Callable[[Role], FlaskClient], client: FlaskClient, events: Events
) -> None:
    assert logged_in(Role.MAINTENANCE).get("/worklist").status_code == 403
    assert client.get("/worklist").headers["Location"].startswith("/login")
    assert not events.of("110112")


def test_todays_steps_per_station_with_their_status(
    day: Engine, logged_in: Callable[[Role], FlaskClient], events: Events
) -> None:
    page = logged_in(Role.SECRETARY).get("/worklist").get_data(as_text=True)
    assert f"Liste de travail du {practice_today():%d/%m/%Y}" in page
    ct = page.split('data-station="CT_SALLE1"')[1].split("</table>")[0]
    us = page.split('data-station="US_SALLE3"')[1].split("</table>")[0]
    assert "DUPONT Marie-Hélène" in ct and "ACC00002" in ct and "réalisé" in ct
    assert "DUPONT Marie-Hélène" in us and "Échographie" in us and "programmé" in us
    assert "ŒUVRARD Chloé" in us and "annulé" in us
    assert "MR_SALLE2" not in page
    assert queries(events) == [{"date": f"{practice_today():%Y%m%d}"}]
    (event,) = events.of("110112")
    assert event.action == "E" and event.objects[0].object_id == "1.2.840.10008.5.1.4.31"


def test_another_day_and_a_modality(day: Engine, logged_in: Callable[[Role], FlaskClient], events: Events) -> None:
    client = logged_in(Role.TECHNOLOGIST)
    tomorrow = practice_today() + timedelta(days=1)
    page = client.get(f"/worklist?day={tomorrow:%Y-%m-%d}").get_data(as_text=True)
    assert "MR_SALLE2" in page and "ŒUVRARD Chloé" in page and "DUPONT" not in page
    page = client.get("/worklist?modality=CT").get_data(as_text=True)
    assert "CT_SALLE1" in page and "US_SALLE3" not in page.split('id="worklist-choices"')[1].split("</form>")[1]
    assert queries(events) == [{"date": f"{tomorrow:%Y%m%d}"}, {"date": f"{practice_today():%Y%m%d}", "modality": "CT"}]


def test_the_ultrasound_as_it_sees_its_worklist(
    day: Engine, logged_in: Callable[[Role], FlaskClient], events: Events, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    page = logged_in(Role.SECRETARY).get("/worklist?preview=US_SALLE3").get_data(as_text=True)
    preview = page.split('id="modality-view"')[1].split("</section>")[0]
    assert "Tel que US_SALLE3 le voit" in preview and "ASCII" in preview
    assert "DUPONT^MARIE-HELENE" in preview and "ECHOGRAPHIE" not in preview and "Echographie" in preview
    assert "OEUVRARD" not in preview and "ŒUVRARD" not in preview  # cancelled: not sent
    assert queries(events) == [{"date": f"{practice_today():%Y%m%d}", "preview": "US_SALLE3"}]
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert "DUPONT" not in logged and "IPP1" not in logged and "ŒUVRARD" not in logged


def test_bad_choices_are_answered_next_to_their_field(
    day: Engine, logged_in: Callable[[Role], FlaskClient], events: Events
) -> None:
    client = logged_in(Role.SECRETARY)
    for arguments, field in (("day=demain", "day"), ("preview=NOT_A_STATION", "preview"), ("modality=ZZ", "modality")):
        answer = client.get(f"/worklist?{arguments}")
        page = answer.get_data(as_text=True)
        assert answer.status_code == 200 and f'id="{field}-errors"' in page
        assert "data-station=" not in page
    assert not events.of("110112")
