"""What a practice's staff do in the console, in a real browser, from a new box to logging out."""

from __future__ import annotations

from pathlib import Path

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


def test_from_the_first_visit_to_logging_out(page: Page, box: Box, screenshots: Path) -> None:
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
    shoot(page, screenshots, "02-after-first-visit")

    page.get_by_role("button", name="Se déconnecter").click()
    expect(page).to_have_url(f"{box.url}/login")
    log_in(page, box, username, "pas le bon")
    expect(page.locator(".errors")).to_contain_text("Identifiant ou mot de passe incorrect")
    shoot(page, screenshots, "03-login-refused")
    log_in(page, box, username, password)
    expect(page.locator("header .who")).to_contain_text(full_name)
    shoot(page, screenshots, "04-home")
    page.get_by_role("button", name="Se déconnecter").click()
    expect(page.get_by_role("status")).to_contain_text("Vous êtes déconnecté")
