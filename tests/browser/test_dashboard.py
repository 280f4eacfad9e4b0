"""The dashboard in a real browser, on a real box: what the monitor stores (a degraded RAID, a failing
disk, 90 days of disk use, an outage of the UPS; recorded straight into the box's index with
`store.record`, since a test machine cannot fail a disk) shows as red tiles and plots with their
data, and nothing on the page breaks the console's CSP (no inline style or script)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from browser_support import Box
from health_data import daily_moments, points_drawn
from playwright.sync_api import ConsoleMessage, Page, expect
from sqlalchemy import Engine

from appliance.accounts import users
from appliance.accounts.roles import Role
from appliance.config import load_config
from appliance.db import create_index_engine
from appliance.monitor import Finding, Measure, Reading, Severity, store

USERNAME, PASSWORD = "m.durand", "Tilleuls-2026!"
DEGRADED = "Le RAID des images (md1) fonctionne sur un seul disque : remplacez le disque en panne."
FAILING = "Le disque sdb va lâcher : faites-le remplacer sans attendre."


@pytest.fixture(scope="module")
def index(box: Box) -> Iterator[Engine]:
    """The box's own index, as appliance-monitor writes it."""
    engine = create_index_engine(load_config(box.config_path).database_url)
    yield engine
    engine.dispose()


def record_a_failing_box(engine: Engine) -> list[datetime]:
    """Records a failing box; returns when its disk measures were taken."""
    now = datetime.now(UTC)
    store.record(
        engine, "raid", Reading([Finding("raid", "md1", Severity.OK, "Le RAID va bien.")]), now - timedelta(days=1)
    )
    raid = Finding("raid", "md1", Severity.CRITICAL, DEGRADED, "md1 [U_]: sdb1 faulty (serial WD-WCC4N1234567)")
    store.record(engine, "raid", Reading([raid]), now)
    smart = [
        Finding("smart", "sda", Severity.OK, "Le disque sda va bien.", "PASSED"),
        Finding("smart", "sdb", Severity.CRITICAL, FAILING, "FAILED: 184 reallocated sectors"),
    ]
    store.record(engine, "smart", Reading(smart), now)
    store.record(engine, "disk", Reading([Finding("disk", "data", Severity.OK, "Place suffisante.")]), now)
    moments = daily_moments(now)
    for left, moment in enumerate(reversed(moments)):
        used = 1.54e12 - left * 6.0e9
        values = [Measure("disk.data.used_bytes", used), Measure("disk.data.free_bytes", 2.0e12 - used)]
        store.add_measures(engine, [*values, Measure("disk.data.days_left", 160.0)], moment)
    cut = now - timedelta(hours=3)
    store.record(engine, "ups", Reading([Finding("ups", "eaton", Severity.WARNING, "Sur batterie.")]), cut)
    for minute in range(0, 16, 3):
        store.add_measures(engine, [Measure("ups.eaton.charge", 100.0 - minute * 3)], cut + timedelta(minutes=minute))
    store.record(
        engine, "ups", Reading([Finding("ups", "eaton", Severity.OK, "Sur secteur.")]), cut + timedelta(minutes=15)
    )
    return moments


def test_a_degraded_raid_and_a_failing_disk_show_red_and_the_plots_draw(
    page: Page, box: Box, index: Engine, screenshots: Path
) -> None:
    users.create(index, USERNAME, "Marc Durand", Role.MAINTENANCE, PASSWORD, "test")
    disk_moments = record_a_failing_box(index)
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text) if policy_violation(message) else None)
    page.goto(f"{box.url}/login")
    page.get_by_label("Identifiant").fill(USERNAME)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    raid, smart = page.locator("#tile-raid"), page.locator("#tile-smart")
    expect(raid).to_have_class("tile error")
    shown = datetime.now(UTC)  # the home page is there: its plots were drawn a moment ago
    expect(raid).to_contain_text(DEGRADED)
    expect(raid).to_contain_text("Panne")
    expect(smart).to_have_class("tile error")
    expect(smart).to_contain_text(FAILING)
    expect(page.locator("#tile-backup")).to_have_class("tile absent")
    expect(page.locator("#tile-monitor")).to_have_count(0)
    disk_line = page.locator("#disk-plot svg polyline.plot-line.measure")
    expect(disk_line).to_have_count(1)
    assert len((disk_line.get_attribute("points") or "").split()) == points_drawn(disk_moments, shown)
    expect(page.locator("#disk-plot svg polyline.plot-line.forecast")).to_have_count(1)
    expect(page.locator("#disk-plot-summary")).to_contain_text("plein dans 160 jours environ")
    expect(page.locator("#images-plot svg rect.plot-bar")).to_have_count(90)
    expect(page.locator("#images-plot-summary")).to_contain_text("3 images en 90 jours")  # the seeded CT
    expect(page.locator("#ups-plot svg polyline.plot-line.measure")).to_have_count(1)
    expect(page.locator("#ups-plot-summary")).to_contain_text("Charge la plus basse : 55 %")
    drawn = page.locator("#disk-plot svg").bounding_box()
    assert drawn is not None and drawn["width"] > 250 and drawn["height"] > 80  # sized by house.css
    page.screenshot(path=str(screenshots / "20-dashboard.png"), full_page=True)
    raid.click()
    expect(page.locator("#subjects")).to_contain_text("serial WD-WCC4N1234567")
    expect(page.locator("#changes tbody tr")).to_have_count(2)
    page.screenshot(path=str(screenshots / "21-health-raid.png"), full_page=True)
    assert not refused, refused


def policy_violation(message: ConsoleMessage) -> bool:
    return message.type == "error" and "Content Security Policy" in message.text
