"""What a practice's staff do in the console, in a real browser, from a new box to logging out:
the first visit creates the administrator, the setup steps configure the box, then a search for a
French name with Œ, the study page, and attaching a study that came without its order."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from browser_support import Box
from playwright.sync_api import Page, expect

ADMINISTRATOR = ("c.bernard", "Claire Bernard", "Tilleuls-2026!")


def shoot(page: Page, screenshots: Path, name: str) -> None:
    page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)


def log_in(page: Page, box: Box, username: str, password: str) -> None:
    page.goto(f"{box.url}/login")
    page.get_by_label("Identifiant").fill(username)
    page.get_by_label("Mot de passe").fill(password)
    page.get_by_role("button", name="Se connecter").click()


def create_the_administrator(page: Page, box: Box, screenshots: Path) -> None:
    username, full_name, password = ADMINISTRATOR
    page.goto(box.url)
    expect(page).to_have_url(f"{box.url}/first-visit")
    expect(page.get_by_role("heading", name="Bienvenue")).to_be_visible()
    shoot(page, screenshots, "01-first-visit")
    page.get_by_label("Nom complet").fill(full_name)
    page.get_by_label("Identifiant").fill(username)
    page.get_by_label("Mot de passe", exact=True).fill("court")
    page.get_by_label("Mot de passe (confirmation)").fill("court")
    page.get_by_role("button", name="Créer l'administrateur").click()
    expect(page.locator(".field.invalid .errors")).to_contain_text("au moins 10 caractères")
    page.get_by_label("Mot de passe", exact=True).fill(password)
    page.get_by_label("Mot de passe (confirmation)").fill(password)
    page.get_by_role("button", name="Créer l'administrateur").click()
    expect(page.locator("header .who")).to_contain_text(full_name)


def set_the_box_up(page: Page, box: Box, screenshots: Path) -> None:
    """Straight after the first visit: the setup steps, one page each."""
    expect(page).to_have_url(re.compile(r"/setup$"))
    shoot(page, screenshots, "02-setup")
    page.locator("#begin").click()
    page.locator("#site_name").fill("")
    page.locator("#next").click()
    expect(page.locator(".field.invalid")).to_be_visible()  # refused, next to the field
    page.locator("#site_name").fill("Cabinet de radiologie des Tilleuls — Nantes")
    page.locator("#next").click()
    expect(page.get_by_role("heading", level=1)).not_to_have_text("")
    page.locator("#next").click()  # the archive as it is
    page.locator("#add-modality").click()
    page.locator("#ae_title").fill("ECHO_SALLE2")
    page.locator("#host").fill("127.0.0.1")
    page.locator("#port").fill("104")
    page.get_by_role("checkbox", name="liste de travail").check()
    page.locator("#description").fill("Échographe salle 2")
    page.locator("#model").select_option("ge-voluson")
    shoot(page, screenshots, "03-setup-modality")
    page.locator("#save").click()
    expect(page.locator("#modalities")).to_contain_text("ECHO_SALLE2")
    page.locator("#next").click()
    page.locator("#next").click()  # the RIS as it is
    page.locator("#next").click()  # no mail relay yet
    page.locator("#repository").fill("/media/sauvegarde/pacs")
    page.locator("#next").click()
    shoot(page, screenshots, "04-setup-review")
    saved = yaml.safe_load((box.data / "settings" / "console.yaml").read_text(encoding="utf-8"))
    assert saved["site_name"] == "Cabinet de radiologie des Tilleuls — Nantes"
    assert any(peer["ae_title"] == "ECHO_SALLE2" for peer in saved["peers"])
    assert saved["backup"]["repository"] == "/media/sauvegarde/pacs"


def search_and_open_the_study(page: Page, screenshots: Path) -> None:
    page.get_by_role("link", name="Patients et examens").click()
    page.get_by_label("Nom du patient").fill("oeuvrard chloe")
    page.locator("#search-button").click()
    results = page.locator("#studies tbody tr")
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("ŒUVRARD")
    shoot(page, screenshots, "05-search")
    results.first.get_by_role("link").click()
    expect(page.locator("main")).to_contain_text("TIL0001")
    expect(page.locator("main")).to_contain_text("CT")
    shoot(page, screenshots, "06-study")


def attach_the_study_without_order(page: Page, screenshots: Path) -> None:
    page.get_by_role("link", name="À rapprocher").click()
    expect(page.locator("#unreconciled tbody tr")).to_have_count(1)
    shoot(page, screenshots, "07-to-reconcile")
    page.get_by_role("link", name="Rattacher à un patient").click()
    page.locator("#patient-search").get_by_label("IPP").fill("IPP1001")
    page.locator("#patient-search").get_by_role("button").click()
    page.locator("#patients-found").get_by_role("link", name="Choisir").click()
    expect(page.locator("#identity-target")).to_contain_text("IPP1001")
    shoot(page, screenshots, "08-attach-confirm")
    page.locator("#attach").click()
    expect(page.get_by_role("status")).to_be_visible()
    expect(page.locator("#nothing-to-reconcile")).to_be_visible()


def fits_a_tablet_held_upright(page: Page, box: Box, screenshots: Path) -> None:
    """No page scrolls sideways on a tablet held upright (tables scroll inside their frame), and the
    buttons of a table's rows are inside its frame, not beyond its edge."""
    page.set_viewport_size({"width": 768, "height": 1024})
    for path in ("/", "/studies?patient_name=oeuvrard", "/reconciliation", "/worklist", "/jobs", "/setup/modalities"):
        page.goto(f"{box.url}{path}")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow} px too wide"
        assert page.evaluate(CUT_OFF_BUTTONS) == [], f"{path}: buttons cut off"
    shoot(page, screenshots, "10-tablet-upright")
    page.set_viewport_size({"width": 1180, "height": 820})


# The buttons and button links of tables whose right edge lies beyond their table's frame.
CUT_OFF_BUTTONS = """() => [...document.querySelectorAll('.table-wrap')].flatMap(frame => {
  const edge = frame.getBoundingClientRect().right;
  return [...frame.querySelectorAll('button, a.button')]
    .filter(button => button.getBoundingClientRect().right > edge + 0.5)
    .map(button => button.textContent.trim());
})"""


def test_from_the_first_visit_to_logging_out(page: Page, box: Box, screenshots: Path) -> None:
    username, _full_name, password = ADMINISTRATOR
    create_the_administrator(page, box, screenshots)
    set_the_box_up(page, box, screenshots)
    page.get_by_role("button", name="Se déconnecter").click()
    expect(page).to_have_url(f"{box.url}/login")
    log_in(page, box, username, "pas le bon")
    expect(page.locator(".errors")).to_contain_text("Identifiant ou mot de passe incorrect")
    log_in(page, box, username, password)
    expect(page.locator("header .brand")).to_contain_text("des Tilleuls — Nantes")  # the daemons reloaded
    shoot(page, screenshots, "09-home")
    search_and_open_the_study(page, screenshots)
    fits_a_tablet_held_upright(page, box, screenshots)  # with the study still to reconcile
    attach_the_study_without_order(page, screenshots)
    page.get_by_role("button", name="Se déconnecter").click()
    expect(page.get_by_role("status")).to_contain_text("Vous êtes déconnecté")
    page.goto(f"{box.url}/studies")
    expect(page).to_have_url(re.compile(r"/login"))
