"""The built-in viewer in a real browser (Debian's chromium, WebGL through SwiftShader), in front of the
real daemons: a radiologist opens a CT series sent by storescu, the first image appears (timed),
scrolls to the last slice, changes a preset, flags two key images, and the new KOS is listed on the
study page and found by a DCMTK C-FIND at the IMAGE level; then a JPEG-LS study decodes in the page.

VIEWER_IMAGES sets the CT's size (100 by default: 600 takes about a minute more to make and send
on the 2-core test machine; the benchmark, tests/bench/bench_viewer.py, uses 600)."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
from browser_support import Box
from datagen import PATIENTS, compressed_as, make_instance
from PIL import Image
from playwright.sync_api import Browser, Page, expect
from pydicom.uid import JPEGLSLossless, generate_uid
from servers import run

from appliance.accounts import users
from appliance.accounts.roles import Role
from appliance.config import load_config
from appliance.db import create_index_engine

IMAGES = int(os.environ.get("VIEWER_IMAGES", "100"))
RADIOLOGIST = ("e.bertrand", "Étienne Bertrand", "Tilleuls-Radio-2026!")
CHROMIUM = "/usr/bin/chromium"  # Debian's, as conftest.py starts it, with the same flags
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWER_FLAGS = ["--enable-unsafe-swiftshader"]  # WebGL in software, before Chromium turns the fallback off
# A function, not an expression: Playwright evaluates a bare expression with eval, which the CSP refuses.
PREVIEW_SHOWN = (
    "() => { const image = document.getElementById('preview'); return image.complete && image.naturalWidth > 0; }"
)


@pytest.fixture(scope="module")
def viewer_browser(browser: Browser) -> Browser:
    """The session's chromium, started again with the software WebGL flag cornerstone needs."""
    launched = browser.browser_type.launch(executable_path=CHROMIUM, args=[*CHROMIUM_FLAGS, *VIEWER_FLAGS])
    yield launched  # type: ignore[misc]
    launched.close()


def send(box: Box, folder: Path, count: int, modality: str, accession: str, syntax: str = "") -> str:
    """A series of `count` images written with datagen and sent by storescu; its Study Instance UID."""
    folder.mkdir(parents=True, exist_ok=True)
    study_uid, series_uid = generate_uid(), generate_uid()
    paths = []
    for number in range(1, count + 1):
        dataset = make_instance(modality, PATIENTS[2], study_uid, series_uid, number, accession_number=accession)
        if syntax:
            dataset = compressed_as(dataset, syntax)
        path = folder / f"{number:04d}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths.append(str(path))
    proposed = ["-xt"] if syntax else []  # JPEG-LS lossless
    run(["storescu", *proposed, "-aec", "APPLIANCE", "127.0.0.1", str(box.dicom_port), *paths], timeout=600)
    return study_uid


@pytest.fixture(scope="module")
def studies(box: Box, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("viewer-studies")
    engine = create_index_engine(load_config(box.config_path).database_url)
    users.create(engine, "c.bernard", "Claire Bernard", Role.ADMINISTRATOR, "Tilleuls-Chef-2026!", "test")
    users.create(engine, RADIOLOGIST[0], RADIOLOGIST[1], Role.RADIOLOGIST, RADIOLOGIST[2], "test")
    engine.dispose()
    return {
        "ct": send(box, folder / "ct", IMAGES, "CT", "VIEW0001"),
        "jpeg-ls": send(box, folder / "jls", 4, "CT", "VIEW0002", JPEGLSLossless),
    }


def log_in(page: Page, box: Box) -> None:
    page.goto(f"{box.url}/login")
    page.get_by_label("Identifiant").fill(RADIOLOGIST[0])
    page.get_by_label("Mot de passe").fill(RADIOLOGIST[2])
    page.get_by_role("button", name="Se connecter").click()
    expect(page.locator("header .who")).to_contain_text(RADIOLOGIST[1])


def shows_an_image(page: Page) -> bool:
    """Whether the viewport shows datagen's body: a bright ellipse on black, filling a good part of
    the canvas (its values sit above the usual CT windows, so it is drawn white), not a blank canvas."""
    picture = Image.open(io.BytesIO(page.locator("#viewport").screenshot())).convert("L")
    levels = np.asarray(picture)
    bright = float((levels > 128).mean())
    return bool(levels.std() > 10 and 0.2 < bright < 0.8)


def wait_index(page: Page, index: int) -> None:
    expect(page.locator("#viewer")).to_have_attribute("data-index", str(index))


def test_a_radiologist_reads_a_ct_and_flags_key_images(
    viewer_browser: Browser, box: Box, studies: dict[str, str], screenshots: Path
) -> None:
    context = viewer_browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    log_in(page, box)
    page.goto(f"{box.url}/studies/{studies['ct']}")
    started = time.perf_counter()
    page.locator("#open-viewer").click()
    # The preview's image loaded (not "visible": on a fast run cornerstone has already replaced it),
    # checked by Playwright's own assertions: a polled wait_for_function would eval() in the page,
    # which the console's Content-Security-Policy rightly forbids.
    expect(page.locator("#preview")).to_have_js_property("complete", True)
    expect(page.locator("#preview")).not_to_have_js_property("naturalWidth", 0)
    preview_seconds = time.perf_counter() - started
    expect(page.locator("#viewer")).to_have_attribute("data-ready", "true")
    rendered_seconds = time.perf_counter() - started
    print(f"\nfirst image: server JPEG {preview_seconds:.2f} s, cornerstone {rendered_seconds:.2f} s ({IMAGES} images)")
    expect(page.locator("#preview")).to_be_hidden()
    wait_index(page, (IMAGES - 1) // 2)
    page.screenshot(path=str(screenshots / "viewer-01-ct-middle.png"))
    assert shows_an_image(page), errors

    page.locator("#viewport").click()
    page.keyboard.press("End")
    wait_index(page, IMAGES - 1)
    expect(page.locator("#position")).to_have_text(f"{IMAGES} / {IMAGES}")
    page.locator("#preset-lung").click()
    expect(page.locator("#viewer")).to_have_attribute("data-preset", "lung")
    page.wait_for_timeout(200)  # one rendered frame after the preset (no event says the canvas was drawn)
    assert shows_an_image(page)
    page.screenshot(path=str(screenshots / "viewer-02-ct-last-lung.png"))

    page.keyboard.press("Home")
    wait_index(page, 0)
    page.locator("#flag").click()
    expect(page.locator("#flagged-count")).to_have_text("1")
    page.locator("#slice").fill("4")
    wait_index(page, 3)
    page.locator("#flag").click()
    expect(page.locator("#flagged-count")).to_have_text("2")
    page.locator("#key-image-title").select_option("113004")
    page.locator("#key-image-note").fill("Coupes de référence pour le staff")
    page.locator("#save-key-images").click()
    expect(page.locator("#key-image-list li")).to_have_count(1)
    expect(page.locator("#key-image-list")).to_contain_text("Pour l'enseignement (2)")
    page.screenshot(path=str(screenshots / "viewer-03-key-images.png"))
    page.locator("#key-image-list button").click()
    expect(page.locator("#position")).to_have_text("1 / 2")

    page.goto(f"{box.url}/studies/{studies['ct']}")
    rows = page.locator("#key-images tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Pour l'enseignement")
    expect(rows.first).to_contain_text("Coupes de référence pour le staff")
    page.screenshot(path=str(screenshots / "viewer-04-study-key-images.png"), full_page=True)
    keys = ["QueryRetrieveLevel=IMAGE", f"StudyInstanceUID={studies['ct']}", "SOPClassUID", "SOPInstanceUID"]
    found = run(
        [
            "findscu",
            "-S",
            "-aec",
            "APPLIANCE",
            *[part for key in keys for part in ("-k", key)],
            "127.0.0.1",
            str(box.dicom_port),
        ]
    )
    assert found.stderr.count("=KeyObjectSelectionDocumentStorage") == 1, found.stderr
    assert not [error for error in errors if "Content Security Policy" in error], errors
    context.close()


def test_a_jpeg_ls_study_decodes_in_the_browser(
    viewer_browser: Browser, box: Box, studies: dict[str, str], screenshots: Path
) -> None:
    context = viewer_browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(30_000)
    log_in(page, box)
    page.goto(f"{box.url}/viewer/studies/{studies['jpeg-ls']}")
    expect(page.locator("#viewer")).to_have_attribute("data-ready", "true")
    expect(page.locator("#preview")).to_be_hidden()
    assert shows_an_image(page)
    page.screenshot(path=str(screenshots / "viewer-05-jpeg-ls.png"))
    context.close()
