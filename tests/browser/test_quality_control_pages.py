"""The quality-control report and the backup page in a real browser, on a real box whose backup goes
to a local borg repository: `appliance backup init` and `appliance backup run` as the box runs them,
then `appliance qc run` (the timer's command) makes the day's report; the responsible radiologist
opens it, signs it off, and the administrator opens the backup page and asks for a backup (on a box,
the request file the path unit watches). Screenshots in build/screenshots/."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import Box
from datagen import PATIENTS, write_series
from playwright.sync_api import ConsoleMessage, Page, expect
from servers import Daemon, archive_config, free_port, run, write_config

from appliance.accounts import users
from appliance.accounts.roles import Role
from appliance.config import load_config
from appliance.db import create_index_engine

RADIOLOGIST, ADMINISTRATOR, PASSWORD = "c.martin", "a.leroy", "Tilleuls-2026!"
VENV_BIN = Path(sys.executable).parent


def appliance(config_path: Path, *arguments: str) -> str:
    """The `appliance` command line, as the box's units run it."""
    environment_path = f"{VENV_BIN}:{os.environ.get('PATH', '')}"
    code = "import sys; from appliance.cli import main; sys.exit(main(sys.argv[1:]))"
    return run(["env", f"PATH={environment_path}", sys.executable, "-c", code, *arguments, "--config",
                str(config_path)], timeout=300).stdout  # fmt: skip


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    """A box with a local backup repository, one CT study received, backed up once, its day's report made."""
    folder = tmp_path_factory.mktemp("qc-box")
    passphrase = folder / "passphrase"
    passphrase.write_text("une phrase secrète de test\n")
    passphrase.chmod(0o600)
    web_port = free_port()
    backup = {"repository": str(folder / "repository"), "passphrase_file": str(passphrase), "ssh_key_file": "",
              "known_hosts_file": "", "borgmatic_file": str(folder / "borgmatic.yaml")}  # fmt: skip
    config = archive_config(folder / "data", free_port(), site_name="Cabinet de radiologie des Tilleuls",
                            backup=backup, web={"bind_address": "127.0.0.1", "port": web_port, "workers": 1,
                                                "threads": 8, "secure_cookies": False})  # fmt: skip
    config_path = write_config(folder / "appliance.yaml", config)
    modules = (("dicom", "appliance.daemons.archive"), ("web", "appliance.daemons.web"))
    daemons = [Daemon(module, config_path, folder / f"{name}.log").start() for name, module in modules]
    box = Box(f"http://127.0.0.1:{web_port}", folder / "data", config_path, daemons[0].port, 0, daemons)
    files = write_series(folder / "study", 3, "CT", PATIENTS[0], accession_number="TIL0001", study_date="20261201")
    run(["storescu", "-aec", "APPLIANCE", "127.0.0.1", str(box.dicom_port), *map(str, files)])
    appliance(config_path, "backup", "init", "--target", "local")
    appliance(config_path, "backup", "run")
    assert "quality-control report of" in appliance(config_path, "qc", "run")
    yield box
    for daemon in daemons:
        daemon.stop()


def log_in(page: Page, box: Box, username: str) -> None:
    page.goto(f"{box.url}/login")
    page.get_by_label("Identifiant").fill(username)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()


def test_the_radiologist_reads_the_day_s_report_and_signs_it_off(page: Page, box: Box, screenshots: Path) -> None:
    engine = create_index_engine(load_config(box.config_path).database_url)
    users.create(engine, RADIOLOGIST, "Dr Claire Martin", Role.RADIOLOGIST, PASSWORD, "test")
    engine.dispose()
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text) if policy_violation(message) else None)
    log_in(page, box, RADIOLOGIST)
    page.get_by_role("link", name="Contrôle qualité", exact=True).click()
    expect(page.locator("#qc-reports tbody tr")).to_have_count(1)
    page.screenshot(path=str(screenshots / "60-qc-list.png"), full_page=True)
    page.locator("#qc-reports tbody tr a").first.click()
    expect(page.locator("#qc-report h1")).to_have_text("Contrôle qualité du système d'archivage")
    expect(page.locator("#qc-row-fixity")).to_contain_text("conforme")
    expect(page.locator("#qc-row-backup")).to_contain_text("conforme")  # backed up minutes ago
    expect(page.locator("#qc-row-audit")).to_contain_text("Chaîne intacte")
    styled = page.locator("#qc-row-fixity .qc-status").evaluate("element => getComputedStyle(element).backgroundColor")
    assert styled == "rgb(215, 240, 217)"  # report.css applies in the console (no inline style)
    page.screenshot(path=str(screenshots / "61-qc-report.png"), full_page=True)
    pdf = page.request.get(box.url + (page.locator("#qc-pdf").get_attribute("href") or ""))
    assert pdf.headers["content-type"] == "application/pdf" and pdf.body().startswith(b"%PDF-")
    page.get_by_role("button", name="Viser").click()
    assert page.locator("#read").evaluate("box => box.validity.valueMissing")  # not ticked: the browser says so
    expect(page.locator("#qc-signed")).to_have_count(0)
    page.get_by_label("J'ai lu ce rapport et ses constats").check()
    page.get_by_label("Commentaire (facultatif)").fill("Relu ; rien à signaler.")
    page.get_by_role("button", name="Viser").click()
    expect(page.locator("#qc-signed")).to_contain_text("Dr Claire Martin")
    expect(page.locator("#sign-form")).to_have_count(0)
    page.screenshot(path=str(screenshots / "62-qc-signed.png"), full_page=True)
    assert not refused, refused


def test_the_administrator_sees_the_backup_and_asks_for_one_now(page: Page, box: Box, screenshots: Path) -> None:
    engine = create_index_engine(load_config(box.config_path).database_url)
    users.create(engine, ADMINISTRATOR, "Anne Leroy", Role.ADMINISTRATOR, PASSWORD, "test")
    engine.dispose()
    log_in(page, box, ADMINISTRATOR)
    page.get_by_role("link", name="Sauvegarde", exact=True).click()
    expect(page.locator("#target-local")).to_contain_text("réussie")
    expect(page.locator("#backup-runs tbody tr")).to_have_count(1)
    page.screenshot(path=str(screenshots / "63-backup.png"), full_page=True)
    page.on("dialog", lambda dialog: dialog.accept())  # "Lancer une sauvegarde maintenant ?"
    page.locator("#back-up-now-button").click()
    expect(page.locator("#backup-requested")).to_be_visible()
    assert (box.data / "run" / "backup-now").is_file()  # what appliance-backup-now.path watches
    page.locator("#key-escrow").click()
    expect(page.locator("#key-local")).to_contain_text("pas encore")
    page.screenshot(path=str(screenshots / "64-backup-key.png"), full_page=True)


def policy_violation(message: ConsoleMessage) -> bool:
    return message.type == "error" and "Content Security Policy" in message.text
