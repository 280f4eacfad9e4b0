"""The console in a real browser: Debian's chromium driven by Playwright (no browser download), in
front of the real daemons (`appliance-dicom`, `appliance-hl7`, `appliance-web` under gunicorn) on
free loopback ports, with data sent the way the practice's peers send it (DCMTK's storescu, HL7
over MLLP). Screenshots of the pages go to `build/screenshots/` (kept by CI as artefacts)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

sys.path.insert(0, str(Path(__file__).parents[1]))

from browser_support import Box
from datagen import PATIENTS, write_series
from hl7_client import MllpClient, ack_code, golden
from servers import Daemon, archive_config, free_port, run, write_config

CHROMIUM = "/usr/bin/chromium"
# As the machine's probe starts it: no sandbox (root in CI), no GPU, and none of the background
# connections a closed network refuses.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).parents[2] / "build" / "screenshots"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    return SCREENSHOTS


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    """A new box (no account yet) holding one patient registered by the RIS and one study that came
    without its order (a patient the RIS never sent)."""
    folder = tmp_path_factory.mktemp("box")
    web_port, hl7_port = free_port(), free_port()
    config = archive_config(
        folder / "data",
        free_port(),
        site_name="Cabinet de radiologie des Tilleuls",
        hl7={"bind_address": "127.0.0.1", "port": hl7_port},
        web={"bind_address": "127.0.0.1", "port": web_port, "workers": 1, "threads": 8, "secure_cookies": False},
    )
    config_path = write_config(folder / "appliance.yaml", config)
    daemons = [
        Daemon(module, config_path, folder / f"{name}.log").start()
        for name, module in (
            ("dicom", "appliance.daemons.archive"),
            ("hl7", "appliance.daemons.hl7"),
            ("web", "appliance.daemons.web"),
        )
    ]
    running = Box(f"http://127.0.0.1:{web_port}", folder / "data", config_path, daemons[0].port, hl7_port, daemons)
    seed(running, folder)
    yield running
    for daemon in daemons:
        daemon.stop()


def seed(box: Box, folder: Path) -> None:
    with MllpClient(box.hl7_port) as client:
        assert ack_code(client.send(golden("a28_utf8.hl7"))) == "AA"  # ŒUVRARD^Chloé, IPP1001
    files = write_series(folder / "study", 3, "CT", PATIENTS[0], accession_number="TIL0001", study_date="20261201")
    run(["storescu", "-aec", "APPLIANCE", "127.0.0.1", str(box.dicom_port), *map(str, files)])


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    """A new browser context (no cookies) in French, the size of a tablet held landscape."""
    context = browser.new_context(locale="fr-FR", viewport={"width": 1180, "height": 820})
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    yield opened
    context.close()
