"""The dose register's page and the archiving supplements' page, with data put in through the real
ingest and the dose consumer: what is shown, who may see it, and what each view and export records."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from console_client import Events
from datagen import PATIENTS, encoded, make_instance
from dose_reports import CtAcquisition, ct_dose_report, study_image
from flask.testing import FlaskClient
from pydicom.dataset import Dataset
from sqlalchemy import Engine

from appliance.accounts.roles import Role
from appliance.archive.index import Index
from appliance.archive.ingest import IncomingObject, Ingest
from appliance.archive.storage import FileStore
from appliance.config import Settings
from appliance.dose.register import register_round

HEAD = "/dose?exam_type=ct-head&first=2026-11-01&last=2026-11-30"


def store(engine: Engine, files: FileStore, dataset: Dataset) -> None:
    Ingest(files, Index(engine)).store(
        IncomingObject(encoded(dataset), dataset.SOPInstanceUID, dataset.SOPClassUID, "SCANNER")
    )


@pytest.fixture()
def head_exams(engine: Engine, settings: Settings, tmp_path: Path) -> None:
    """Three CT head exams (DLP 700, 800, 1200 mGy.cm: the last above the NRD of 850), registered."""
    files = FileStore(settings.current.storage.data_directory, 0)
    for number, dlp in enumerate((700.0, 800.0, 1200.0)):
        image = study_image("CT", PATIENTS[number], description="TDM encéphale", study_date=f"2026111{number}")
        store(engine, files, ct_dose_report(image, [CtAcquisition("Encéphale", 40.0 + number, dlp)]))
    assert register_round(engine, files, settings.current.dose).read == 3


def test_the_dose_page_shows_the_distribution_the_median_and_the_exam_above(
    head_exams: None, logged_in: Callable[[Role], FlaskClient], events: Events
) -> None:
    page = logged_in(Role.RADIOLOGIST).get(HEAD)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'id="plot-dlp-mgy-cm"' in text and "<svg" in text and "NRD 850" in text
    assert "Répartition de DLP (PDL) (mGy.cm)" in text
    assert 'id="median-dlp_mgy_cm"' in text and ">800<" in text  # the median of 700, 800, 1200
    above = text.split('id="above"')[1].split("</table>")[0]
    assert "LEFÈVRE Hélène (IPP0003)" in above and "DUPONT" not in above
    [shown] = events.of("110103")
    assert [found.object_id for found in shown.objects if found.kind == "patient"] == ["IPP0003^^^CABINET"]


def test_the_survey_export_is_the_csv_and_is_audited(
    head_exams: None, logged_in: Callable[[Role], FlaskClient], events: Events
) -> None:
    answer = logged_in(Role.ADMINISTRATOR).get(HEAD.replace("/dose?", "/dose/export?"))
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    table = list(csv.reader(io.StringIO(answer.get_data(as_text=True)), delimiter=";"))
    assert table[0][:3] == ["type_examen", "date_examen", "appareil"] and len(table) == 4
    [exported] = events.of("110106")
    assert [found.object_id for found in exported.objects] == ["dose-survey:2026-11-01/2026-11-30"]
    assert ("rows", "3") in exported.objects[0].details


def test_a_period_ending_before_it_starts_is_answered_next_to_the_field(
    logged_in: Callable[[Role], FlaskClient], events: Events
) -> None:
    text = (
        logged_in(Role.RADIOLOGIST)
        .get("/dose?exam_type=ct-head&first=2026-11-30&last=2026-11-01")
        .get_data(as_text=True)
    )
    assert "La fin de la période précède son début." in text.split('id="last-errors"')[1]
    assert events.of("110103") == []


def test_the_billing_page_and_its_export(
    engine: Engine, settings: Settings, logged_in: Callable[[Role], FlaskClient], events: Events
) -> None:
    files = FileStore(settings.current.storage.data_directory, 0)
    store(engine, files, make_instance("CR", PATIENTS[0], study_date="20080430", accession_number="R1"))
    store(engine, files, make_instance("CR", PATIENTS[1], study_date="20080502", accession_number="R2"))
    client = logged_in(Role.SECRETARY)
    text = client.get("/billing?period=2008-Q2").get_data(as_text=True)
    assert "2 examens facturables" in text and "Total : 5,99 EUR" in text
    assert len(events.of("110103")) == 1
    answer = client.get("/billing/export?period=2008-Q2")
    assert answer.status_code == 200
    assert answer.get_data(as_text=True).splitlines()[-1] == "total;;;;;2 facturable(s);;5,99;"
    [exported] = events.of("110106")
    assert exported.objects[0].object_id == "billing:2008-Q2"
    bad = client.get("/billing?period=2008-13").get_data(as_text=True)
    assert "Indiquez un mois (2008-01) ou un trimestre (2008-Q1)." in bad.split('id="period-errors"')[1]


@pytest.mark.parametrize(
    ("role", "dose", "billing"),
    [
        (Role.RADIOLOGIST, 200, 403),
        (Role.ADMINISTRATOR, 200, 200),
        (Role.SECRETARY, 403, 200),
        (Role.TECHNOLOGIST, 403, 403),
        (Role.MAINTENANCE, 403, 403),
    ],
)
def test_who_may_open_the_pages(logged_in: Callable[[Role], FlaskClient], role: Role, dose: int, billing: int) -> None:
    client = logged_in(role)
    assert (client.get("/dose").status_code, client.get("/billing").status_code) == (dose, billing)
