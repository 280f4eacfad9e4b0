"""The forwarding rules' form in a real browser, on a real box (A7): an administrator adds a rule, a
refusal of the schema shows next to its field, the saved rule is in force in the running worker
(the CT sent next reaches DCMTK's storescp), then the rule is changed and removed (with the
page's confirmation)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import Box
from datagen import PATIENTS, write_series
from playwright.sync_api import Dialog, Page, Route, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from pydicom import dcmread
from servers import Daemon, run, wait_for, wait_for_port

from appliance.accounts import users
from appliance.accounts.roles import Role
from appliance.config import load_config
from appliance.db import create_index_engine

USERNAME, PASSWORD = "m.durand", "Tilleuls-Regles-2026!"
SCRIPT = "**/static/console.js*"


@pytest.fixture(scope="module")
def worker(box: Box) -> Iterator[Daemon]:
    daemon = Daemon("appliance.daemons.worker", box.config_path, box.data.parent / "worker.log").start()
    run_directory = load_config(box.config_path).storage.run_directory
    wait_for(lambda: (run_directory / "appliance-worker.pid").exists(), "the worker's PID file")
    yield daemon
    daemon.stop()


@pytest.fixture()
def storescp(box: Box, tmp_path: Path) -> Iterator[Path]:
    """DCMTK's storescp as the configured peer STORESCP; the folder it writes to."""
    peer = load_config(box.config_path).peer("STORESCP")
    assert peer is not None
    received = tmp_path / "received"
    received.mkdir()
    process = subprocess.Popen(["storescp", "-aet", "STORESCP", "-od", str(received), str(peer.port)])
    try:
        wait_for_port(peer.port, "storescp", process)
        yield received
    finally:
        process.terminate()
        process.wait()


def assert_no_button_before_the_script(page: Page, box: Box) -> None:
    """The page's script (which asks before a removal) held back: its remove button must not be
    there to click meanwhile (a deferred script let a click remove the rule unasked)."""
    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)

    page.route(SCRIPT, hold)
    page.goto(f"{box.url}/forward", wait_until="commit")
    try:
        page.locator("#remove-rule-1").click(timeout=1500)
        clicked = True
    except PlaywrightTimeout:
        clicked = False
    assert not clicked, "the remove button was there before the page's script: the rule went unasked"
    assert len(held) == 1
    held[0].continue_()
    page.unroute(SCRIPT, hold)
    expect(page.locator("#remove-rule-1")).to_be_visible()


def log_in(page: Page, box: Box) -> None:
    engine = create_index_engine(load_config(box.config_path).database_url)
    users.create(engine, USERNAME, "Marc Durand", Role.ADMINISTRATOR, PASSWORD, "test")
    engine.dispose()
    page.goto(f"{box.url}/login")
    page.get_by_label("Identifiant").fill(USERNAME)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.locator("header .who")).to_contain_text("Marc Durand")


def test_a_rule_added_changed_and_removed_in_the_browser(
    page: Page, box: Box, worker: Daemon, storescp: Path, screenshots: Path
) -> None:
    log_in(page, box)
    page.goto(f"{box.url}/forward")
    page.locator("#add-rule").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Nouvelle règle de transfert")
    page.get_by_label("Nom de la règle").fill("Scanners vers le second avis")
    page.get_by_label("Destination").select_option("STORESCP")
    page.get_by_label("Modalités").fill("CT")
    page.get_by_label("Classes SOP (UID)").fill("scanner")
    page.locator("#save").click()
    expect(page.locator("#sop_classes-errors")).to_contain_text("does not match")  # next to its field
    page.screenshot(path=str(screenshots / "forward-rule-refused.png"), full_page=True)
    page.get_by_label("Classes SOP (UID)").fill("")
    page.locator("#save").click()
    expect(page.locator("#rules")).to_contain_text("Scanners vers le second avis")
    expect(page.locator(".flash, .notice").filter(has_text="appliance-worker").first).to_be_visible()
    page.screenshot(path=str(screenshots / "forward-rules.png"), full_page=True)

    ct = write_series(box.data.parent / "forwarded-ct", 3, "CT", PATIENTS[2], study_date="20261202")
    run(["storescu", "-aec", "APPLIANCE", "127.0.0.1", str(box.dicom_port), *map(str, ct)])
    wait_for(lambda: len(list(storescp.glob("*"))) == 3, "the CT study received by storescp")
    sent = {dcmread(path).SOPInstanceUID for path in ct}
    assert {dcmread(path).SOPInstanceUID for path in storescp.glob("*")} == sent

    page.locator("#edit-rule-1").click()
    expect(page.get_by_label("Nom de la règle")).to_have_value("Scanners vers le second avis")
    page.get_by_label("En vigueur").uncheck()
    page.locator("#save").click()
    expect(page.locator("#rules tbody tr").first).to_contain_text("non")
    assert_no_button_before_the_script(page, box)
    questions: list[str] = []

    def answer(dialog: Dialog) -> None:  # no the first time, yes the second
        questions.append(dialog.message)
        (dialog.accept if len(questions) > 1 else dialog.dismiss)()

    page.on("dialog", answer)
    page.locator("#remove-rule-1").click()
    expect(page.locator("#rules")).to_contain_text("Scanners vers le second avis")  # not removed
    page.locator("#remove-rule-1").click()
    expect(page.locator("#no-rule")).to_be_visible()
    assert len(questions) == 2 and "Scanners vers le second avis" in questions[0]
