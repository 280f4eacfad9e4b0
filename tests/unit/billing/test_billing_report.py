"""Scope and billing (Q2) on studies stored through the real ingest: the rate by exam date across
the 2008 changes, a digitised mammogram excluded with its reason, a pregnancy follow-up ultrasound
(by the order's procedure code) excluded, and the CSV's totals."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from datagen import PATIENTS, encoded, make_instance
from pydicom.dataset import Dataset
from sqlalchemy import Engine
from worklist_data import add_patient, new_order, schedule

from appliance.archive.index import Index
from appliance.archive.ingest import IncomingObject, Ingest, StoreOutcome
from appliance.archive.storage import FileStore
from appliance.billing.report import FRENCH, BadPeriod, billing_report, period_of, rate_on, report_csv
from appliance.config import development_config
from appliance.config.reporting import ProcedureScope

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def store(engine: Engine, files: FileStore, dataset: Dataset) -> None:
    incoming = IncomingObject(encoded(dataset), dataset.SOPInstanceUID, dataset.SOPClassUID, "MODALITY")
    assert Ingest(files, Index(engine)).store(incoming).outcome is StoreOutcome.STORED


def test_periods() -> None:
    assert (period_of("2008-02").first.isoformat(), period_of("2008-02").last.isoformat()) == (
        "2008-02-01",
        "2008-02-29",
    )
    quarter = period_of("2007-Q4")
    assert (quarter.first.isoformat(), quarter.last.isoformat()) == ("2007-10-01", "2007-12-31")
    with pytest.raises(BadPeriod):
        period_of("2008-13")


def test_the_rate_follows_the_exam_date_across_the_2008_changes(engine: Engine, tmp_path: Path) -> None:
    files = FileStore(tmp_path / "data", 0)
    config = development_config(files.data_directory).billing
    days = {"20071231": "3.00", "20080101": "3.33", "20080430": "3.33", "20080501": "2.66"}
    for number, day in enumerate(days):
        store(engine, files, make_instance("CR", PATIENTS[number % 4], study_date=day, accession_number=f"R{number}"))
    for day, euros in days.items():
        assert str(rate_on(config.rates, date(int(day[:4]), int(day[4:6]), int(day[6:])))) == euros
    first_half = [billing_report(engine, period_of(name), config) for name in ("2007-Q4", "2008-Q1", "2008-Q2")]
    assert [[str(line.euros) for line in report.lines] for report in first_half] == [
        ["3.00"],
        ["3.33"],
        ["3.33", "2.66"],
    ]
    assert [report.total for report in first_half] == [Decimal("3.00"), Decimal("3.33"), Decimal("5.99")]


def test_a_digitised_mammogram_is_excluded_with_its_reason(engine: Engine, tmp_path: Path) -> None:
    files = FileStore(tmp_path / "data", 0)
    direct = make_instance("MG", PATIENTS[0], study_date="20080310", accession_number="MG1")
    film = make_instance("MG", PATIENTS[2], study_date="20080311", accession_number="MG2")
    film.SOPClassUID = film.file_meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    film.ConversionType = "DF"
    for dataset in (direct, film):
        store(engine, files, dataset)
    report = billing_report(engine, period_of("2008-03"), development_config(files.data_directory).billing)
    found = {line.accession_number: line for line in report.lines}
    assert found["MG1"].classification.in_scope and found["MG1"].euros == Decimal("3.33")
    excluded = found["MG2"].classification
    assert (excluded.category, excluded.in_scope, excluded.reason, excluded.detail) == (
        "mammography",
        False,
        "secondary-digitisation",
        "DF",
    )
    table = list(csv.reader(io.StringIO(report_csv(report, FRENCH)), delimiter=";"))
    assert table[2][5:] == [
        "Mammographie",
        "non",
        "0,00",
        "Mammographie issue d'une numérisation secondaire (hors champ) (DF)",
    ]
    assert table[-1] == ["total", "", "", "", "", "1 facturable(s)", "", "3,33", ""]


def test_a_pregnancy_follow_up_ultrasound_is_excluded_by_its_procedure_code(engine: Engine, tmp_path: Path) -> None:
    files = FileStore(tmp_path / "data", 0)
    base = development_config(files.data_directory)
    follow_up = ProcedureScope(
        "JQQM999", "CCAM", "Échographie de suivi de grossesse", False, "Suivi de grossesse : hors champ"
    )
    config = dataclasses.replace(base.billing, procedure_codes=(follow_up,))
    patient_pk = add_patient(engine, "IPP0003", "LEFÈVRE^Hélène")
    order = new_order(7, modality="US", accession_number="US1")
    order = dataclasses.replace(
        order,
        procedure=dataclasses.replace(
            order.procedure, value="JQQM999", scheme="CCAM", meaning="Échographie de grossesse"
        ),
    )
    schedule(engine, base, order, patient_pk)
    followed = make_instance("US", PATIENTS[2], study_date="20080512", accession_number="US1")
    followed.StudyDescription = "Échographie obstétricale"
    morphology = make_instance("US", PATIENTS[0], study_date="20080513", accession_number="US2")
    morphology.StudyDescription = "Échographie obstétricale morphologique"
    abdomen = make_instance("US", PATIENTS[1], study_date="20080514", accession_number="US3")
    abdomen.StudyDescription = "Échographie abdominale"
    for dataset in (followed, morphology, abdomen):
        store(engine, files, dataset)
    report = billing_report(engine, period_of("2008-05"), config)
    found = {line.accession_number: line.classification for line in report.lines}
    assert (found["US1"].in_scope, found["US1"].reason, found["US1"].detail) == (
        False,
        "procedure-code",
        "Suivi de grossesse : hors champ",
    )
    assert (found["US2"].category, found["US2"].in_scope) == ("obstetric-ultrasound", True)
    assert (found["US3"].in_scope, found["US3"].reason) == (False, "not-obstetric-ultrasound")
    assert report.total == Decimal("2.66")
