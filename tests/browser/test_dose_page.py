"""The dose register's page in a real browser, on a real box: CT head dose reports sent by C-STORE,
read by the running worker, then the radiologist sees the distribution plot with the reference
level, the median against it and the exam above it (and nothing breaks the CSP)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import Box
from datagen import PATIENTS
from dose_reports import CtAcquisition, ct_dose_report, study_image
from playwright.sync_api import ConsoleMessage, Page, expect
from servers import Daemon, associate, wait_for
from sqlalchemy import func, select

from appliance.accounts import users
from appliance.accounts.roles import Role
from appliance.config import load_config
from appliance.db import create_index_engine
from appliance.db.schema import dose_report

USERNAME, PASSWORD = "c.bernard", "Tilleuls-Dose-2026!"
DLPS = (620.0, 700.0, 760.0, 810.0, 1240.0)  # the last above the NRD of 850 mGy.cm


@pytest.fixture(scope="module")
def worker(box: Box) -> Iterator[Daemon]:
    daemon = Daemon("appliance.daemons.worker", box.config_path, box.data.parent / "worker.log").start()
    yield daemon
    daemon.stop()


def send_head_exams(box: Box) -> None:
    reports = [
        ct_dose_report(
            study_image("CT", PATIENTS[number % 4], description="TDM encéphale", study_date=f"2026110{number + 1}"),
            [CtAcquisition("Topogramme", None, None, spiral=False), CtAcquisition("Encéphale", 40.0 + number * 4, dlp)],
        )
        for number, dlp in enumerate(DLPS)
    ]
    association = associate(box.dicom_port, str(reports[0].SOPClassUID))
    assert association.is_established
    try:
        assert [int(association.send_c_store(report).Status) for report in reports] == [0] * len(reports)
    finally:
        association.release()


def test_the_dose_page_shows_the_distribution_and_the_exam_above_the_nrd(
    page: Page, box: Box, worker: Daemon, screenshots: Path
) -> None:
    engine = create_index_engine(load_config(box.config_path).database_url)
    users.create(engine, USERNAME, "Claire Bernard", Role.RADIOLOGIST, PASSWORD, "test")
    send_head_exams(box)

    def registered() -> int:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(dose_report)).scalar() or 0)

    wait_for(lambda: registered() == len(DLPS), "the worker to read the dose reports")
    engine.dispose()
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text) if policy_violation(message) else None)
    page.goto(f"{box.url}/login")
    page.get_by_label("Identifiant").fill(USERNAME)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.get_by_role("link", name="Registre de dose").click()
    page.get_by_label("Type d'examen").select_option("ct-head")
    page.get_by_label("Du").fill("2026-11-01")
    page.get_by_label("Au").fill("2026-11-30")
    page.get_by_role("button", name="Afficher").click()
    bars = page.locator("#plot-dlp-mgy-cm svg rect.plot-bar")
    expect(page.locator("#plot-dlp-mgy-cm svg")).to_be_visible()
    counts = [int(text.rsplit(":", 1)[1]) for text in bars.locator("title").all_text_contents()]
    assert sum(counts) == len(DLPS) and counts.count(0) < len(counts)  # every exam in one bar
    expect(page.locator("#plot-dlp-mgy-cm svg polyline.plot-line.limit")).to_have_count(1)
    expect(page.locator("#plot-dlp-mgy-cm svg text.plot-note")).to_have_text("NRD 850")
    expect(page.locator("#median-dlp_mgy_cm")).to_contain_text("760")  # median of the five DLPs
    expect(page.locator("#median-dlp_mgy_cm")).to_contain_text("médiane au niveau du NRD ou en dessous")
    above = page.locator("#above tbody tr")
    expect(above).to_have_count(1)
    expect(above.first).to_contain_text(re.compile(r"1\W?240"))  # French digit grouping
    drawn = page.locator("#plot-dlp-mgy-cm svg").bounding_box()
    assert drawn is not None and drawn["width"] > 250 and drawn["height"] > 80
    page.screenshot(path=str(screenshots / "40-dose-register.png"), full_page=True)
    assert not refused, refused


def policy_violation(message: ConsoleMessage) -> bool:
    return message.type == "error" and "Content Security Policy" in message.text
