"""The archiving supplements' page in a real browser, on a real box: studies sent by C-STORE
(DCMTK's storescu) on both sides of the 2008 rate changes, then the secretary reads a quarter's
lines with the rate of each exam's date, the exams out of scope with their reason and the totals,
and downloads the CSV, whose export is in the audit trail."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from browser_support import Box
from datagen import PATIENTS, SECONDARY_CAPTURE, make_instance
from playwright.sync_api import Page, expect
from pydicom.dataset import Dataset
from servers import run, wait_for

from appliance.accounts import users
from appliance.accounts.roles import Role
from appliance.audit.events import AuditEvent, EventId
from appliance.audit.trail import AuditFilter, AuditTrail
from appliance.config import load_config
from appliance.db import create_index_engine

USERNAME, PASSWORD = "s.garnier", "Tilleuls-Factures-2026!"
SPACES = re.compile(r"\s+")


def digitised_mammogram() -> Dataset:
    """A film mammogram scanned into a Secondary Capture: out of scope (not direct digital)."""
    film = make_instance("MG", PATIENTS[0], study_date="20080610", accession_number="SUP0005")
    film.SOPClassUID = film.file_meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    film.ConversionType = "DF"
    return film


def abdominal_ultrasound() -> Dataset:
    """An ultrasound that is not obstetric: out of scope."""
    ultrasound = make_instance("US", PATIENTS[1], study_date="20080612", accession_number="SUP0006")
    ultrasound.StudyDescription = "Échographie abdominale"
    return ultrasound


def send_studies(box: Box, folder: Path) -> None:
    """One instance per study: the last day at 3.00 EUR, the last at 3.33, the first at 2.66, a
    direct digital mammogram, and two studies out of scope."""
    studies = [
        make_instance("CR", PATIENTS[0], study_date="20071231", accession_number="SUP0001"),
        make_instance("CR", PATIENTS[1], study_date="20080430", accession_number="SUP0002"),
        make_instance("DX", PATIENTS[2], study_date="20080501", accession_number="SUP0003"),
        make_instance("MG", PATIENTS[3], study_date="20080520", accession_number="SUP0004"),
        digitised_mammogram(),
        abdominal_ultrasound(),
    ]
    folder.mkdir()
    paths = []
    for dataset in studies:
        path = folder / f"{dataset.AccessionNumber}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths.append(str(path))
    run(["storescu", "-aec", "APPLIANCE", "127.0.0.1", str(box.dicom_port), *paths])


def rows(page: Page) -> list[list[str]]:
    """The table's cells, spaces (French digit grouping included) made plain."""
    cells = page.locator("#billing-lines tbody tr").evaluate_all(
        "rows => rows.map(row => Array.from(row.cells, cell => cell.innerText))"
    )
    return [[SPACES.sub(" ", cell).strip() for cell in row] for row in cells]


def show(page: Page, period: str) -> None:
    page.get_by_label("Mois ou trimestre").fill(period)
    page.get_by_role("button", name="Afficher").click()
    expect(page.locator("#totals")).to_be_visible()


@pytest.fixture(scope="module")
def billed(box: Box, tmp_path_factory: pytest.TempPathFactory) -> Box:
    """The box with the secretary's account and the studies (once for the module's tests)."""
    engine = create_index_engine(load_config(box.config_path).database_url)
    users.create(engine, USERNAME, "Sophie Garnier", Role.SECRETARY, PASSWORD, "test")
    engine.dispose()
    send_studies(box, tmp_path_factory.mktemp("studies") / "sent")
    return box


@pytest.fixture()
def secretary(page: Page, billed: Box) -> Page:
    """The secretary, logged in, on the archiving supplements' page."""
    box = billed
    page.goto(f"{box.url}/login")
    page.get_by_label("Identifiant").fill(USERNAME)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.get_by_role("link", name="Suppléments d'archivage").click()
    return page


def test_the_billing_page_shows_the_rates_by_date_the_exclusions_and_the_totals(
    secretary: Page, box: Box, screenshots: Path
) -> None:
    page = secretary
    show(page, "2008-Q2")
    assert rows(page) == [
        ["30/04/2008", "DUPONT Jean-François (IPP0002)", "SUP0002", "CR", "Radiologie conventionnelle", "3,33", ""],
        ["01/05/2008", "LEFÈVRE Hélène (IPP0003)", "SUP0003", "DX", "Radiologie conventionnelle", "2,66", ""],
        ["20/05/2008", "MARTIN Noël (IPP0004)", "SUP0004", "MG", "Mammographie", "2,66", ""],
        [
            "10/06/2008",
            "ŒUVRARD Chloé (IPP0001)",
            "SUP0005",
            "MG",
            "Mammographie",
            "0,00",
            "Mammographie issue d'une numérisation secondaire (hors champ) (DF)",
        ],
        [
            "12/06/2008",
            "DUPONT Jean-François (IPP0002)",
            "SUP0006",
            "US",
            "Échographie",
            "0,00",
            "Échographie non obstétricale (hors champ)",
        ],
    ]
    expect(page.locator("#billing-lines tbody tr.excluded")).to_have_count(2)
    totals = SPACES.sub(" ", page.locator("#totals").inner_text())
    assert totals == "3 examens facturables, 2 hors champ · Total : 8,65 EUR"
    page.screenshot(path=str(screenshots / "41-billing-quarter.png"), full_page=True)
    show(page, "2007-12")  # the rate before the 2008 changes
    assert rows(page) == [
        ["31/12/2007", "ŒUVRARD Chloé (IPP0001)", "SUP0001", "CR", "Radiologie conventionnelle", "3,00", ""]
    ]
    assert SPACES.sub(" ", page.locator("#totals").inner_text()).endswith("Total : 3,00 EUR")


def test_the_csv_is_downloaded_and_its_export_audited(secretary: Page, box: Box) -> None:
    page = secretary
    show(page, "2008-Q2")
    with page.expect_download() as started:
        page.get_by_role("button", name="Exporter (CSV)").click()
    download = started.value
    assert download.suggested_filename == "supplements-archivage-2008-Q2.csv"
    table = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8")), delimiter=";"))
    assert table[0] == [
        "date_examen",
        "numero_accession",
        "ipp",
        "patient",
        "modalites",
        "categorie",
        "dans_le_champ",
        "supplement_eur",
        "motif",
    ]
    by_accession = {row[1]: row for row in table[1:-1]}
    assert [(row[0], row[6], row[7]) for row in table[1:-1]] == [
        ("2008-04-30", "oui", "3,33"),
        ("2008-05-01", "oui", "2,66"),
        ("2008-05-20", "oui", "2,66"),
        ("2008-06-10", "non", "0,00"),
        ("2008-06-12", "non", "0,00"),
    ]
    assert by_accession["SUP0005"][8] == "Mammographie issue d'une numérisation secondaire (hors champ) (DF)"
    assert by_accession["SUP0006"][8] == "Échographie non obstétricale (hors champ)"
    assert table[-1] == ["total", "", "", "", "", "3 facturable(s)", "", "8,65", ""]
    exported = export_records(box)
    assert [found.object_id for found in exported[-1].objects] == ["billing:2008-Q2"]
    assert exported[-1].requestor is not None and exported[-1].requestor.user_id == USERNAME


def export_records(box: Box) -> list[AuditEvent]:
    """The Export (110106) records, once the web daemon's writer has appended one."""
    trail = AuditTrail(load_config(box.config_path).audit.database)
    try:
        wait_for(lambda: trail.count(AuditFilter(event=EventId.EXPORT)) >= 1, "the export's audit record")
        return [record.event for record in trail.records(AuditFilter(event=EventId.EXPORT))]
    finally:
        trail.close()
