"""The dashboard: the home page's health tiles read from findings the monitor stored (`store.record`),
a degraded RAID and a failing disk in red, absent sources in grey, a silent monitor in amber; the
plots drawn from the measures and the index; a source's detail page; who may open what; the test
alert through a real SMTP server on loopback (aiosmtpd), and without a relay."""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from console_client import Events, csrf_token, log_in
from datagen import PATIENTS, encoded, make_instance
from flask import Flask
from flask.testing import FlaskClient
from health_data import daily_moments, points_drawn
from servers import free_port
from sqlalchemy import Engine

from appliance.accounts import users
from appliance.accounts.roles import Role
from appliance.archive.attributes import read_attributes
from appliance.archive.index import Index
from appliance.archive.storage import WrittenFile
from appliance.audit.events import Outcome
from appliance.config import Settings, development_config
from appliance.config.loader import MailConfig
from appliance.monitor import Finding, Measure, Reading, Severity, store
from appliance.web import create_app

DEGRADED = "Le RAID des images (md1) fonctionne sur un seul disque : remplacez le disque en panne."
FAILING = "Le disque sdb va lâcher : faites-le remplacer sans attendre."
TILE = re.compile(
    r'<(?:a|div) class="(?P<classes>[^"]*)" id="(?P<id>tile-[a-z-]+)"[^>]*>(?P<body>.*?)</(?:a|div)>', re.S
)


def tiles(page: str) -> dict[str, tuple[str, str]]:
    """{tile id: (its classes, its text)} of a home page."""
    return {
        found["id"]: (found["classes"], " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found["body"])).split()))
        for found in TILE.finditer(page)
    }


def record_a_sick_box(engine: Engine, now: datetime) -> None:
    """What the monitor would have stored: RAID degraded, one disk failing and one healthy, no UPS."""
    raid = Finding("raid", "md1", Severity.CRITICAL, DEGRADED, "md1 [U_]: sdb1 faulty (serial WD-WCC4N1234567)")
    store.record(
        engine, "raid", Reading([Finding("raid", "md1", Severity.OK, "Le RAID md1 va bien.")]), now - timedelta(days=2)
    )
    store.record(engine, "raid", Reading([raid]), now - timedelta(hours=3))
    store.record(engine, "raid", Reading([raid]), now)
    smart = [
        Finding("smart", "sda", Severity.OK, "Le disque sda va bien.", "PASSED, 0 reallocated"),
        Finding("smart", "sdb", Severity.CRITICAL, FAILING, "FAILED; 184 reallocated, 12 pending sectors"),
    ]
    store.record(engine, "smart", Reading(smart), now)
    store.record(engine, "ups", Reading([Finding("ups", "ups", Severity.ABSENT, "Aucun onduleur configuré.")]), now)
    disk = Finding("disk", "data", Severity.OK, "Place suffisante pour les images.", "/srv 40 % used")
    store.record(engine, "disk", Reading([disk]), now)


def test_a_degraded_raid_and_a_failing_disk_are_red_absent_sources_grey(
    logged_in: Callable[[Role], FlaskClient], engine: Engine
) -> None:
    now = datetime.now(UTC)
    record_a_sick_box(engine, now)
    shown = tiles(logged_in(Role.SECRETARY).get("/").get_data(as_text=True))
    assert shown["tile-raid"][0] == "tile error" and DEGRADED in shown["tile-raid"][1]
    assert "Panne" in shown["tile-raid"][1] and "depuis le" in shown["tile-raid"][1]
    assert shown["tile-smart"][0] == "tile error" and FAILING in shown["tile-smart"][1]
    assert shown["tile-disk"][0] == "tile ok" and "OK" in shown["tile-disk"][1]
    assert shown["tile-ups"][0] == "tile absent" and "Non présent" in shown["tile-ups"][1]
    assert shown["tile-backup"][0] == "tile absent" and "Aucune information" in shown["tile-backup"][1]
    assert shown["tile-qc"][0] == "tile absent" and "Aucune information" in shown["tile-qc"][1]
    assert shown["tile-services"][0] == "tile absent" and "Aucune information" in shown["tile-services"][1]
    assert "tile-monitor" not in shown  # the monitor wrote just now
    assert "tile-messages" in shown and "tile-reconciliation" in shown  # the tiles of the day stay


def test_more_problems_than_the_tile_shows_are_counted(
    logged_in: Callable[[Role], FlaskClient], engine: Engine
) -> None:
    now = datetime.now(UTC)
    failing = [Finding("smart", name, Severity.WARNING, f"Le disque {name} chauffe.") for name in ("sda", "sdb", "sdc")]
    store.record(engine, "smart", Reading(failing), now)
    classes, text = tiles(logged_in(Role.SECRETARY).get("/").get_data(as_text=True))["tile-smart"]
    assert classes == "tile warning" and "Le disque sda chauffe." in text and "(et 2 autres problèmes)" in text


def test_a_silent_monitor_shows_an_amber_tile_and_stale_tiles(
    logged_in: Callable[[Role], FlaskClient], engine: Engine
) -> None:
    client = logged_in(Role.MAINTENANCE)
    never = tiles(client.get("/").get_data(as_text=True))
    assert never["tile-monitor"][0] == "tile warning" and "n'a encore rien enregistré" in never["tile-monitor"][1]
    record_a_sick_box(engine, datetime.now(UTC) - timedelta(hours=1))
    shown = tiles(client.get("/").get_data(as_text=True))
    assert shown["tile-monitor"][0] == "tile warning"
    assert "n'a rien vérifié depuis le" in shown["tile-monitor"][1] and "appliance-monitor" in shown["tile-monitor"][1]
    assert shown["tile-raid"][0] == "tile error stale" and "Dernière vérification le" in shown["tile-raid"][1]
    detail = client.get("/health/raid").get_data(as_text=True)
    assert 'id="monitor-silent"' in detail


def test_the_detail_page_shows_every_subject_the_contractor_detail_and_the_changes(
    logged_in: Callable[[Role], FlaskClient], engine: Engine, events: Events
) -> None:
    record_a_sick_box(engine, datetime.now(UTC))
    client = logged_in(Role.SECRETARY)
    page = html.unescape(client.get("/health/smart").get_data(as_text=True))
    assert "Disques" in page and "sda" in page and "sdb" in page
    assert FAILING in page and "184 reallocated, 12 pending sectors" in page
    raid = html.unescape(client.get("/health/raid").get_data(as_text=True))
    changes = raid.split('id="changes"')[1]
    assert "OK → " in changes and "Panne" in changes and "serial WD-WCC4N1234567" in changes
    assert changes.index(DEGRADED) < changes.index("Le RAID md1 va bien.")  # newest first
    backup = client.get("/health/backup").get_data(as_text=True)
    assert "a encore rien enregistré à ce sujet." in backup and "Aucun changement enregistré" in backup
    assert client.get("/health/format-c").status_code == 404
    assert not events.recorded or all(event.event.code in ("110114",) for event in events.recorded)  # no patient data


@pytest.mark.parametrize("role", list(Role))
def test_everyone_sees_the_health_only_administrators_send_a_test_alert(
    app: Flask, logged_in: Callable[[Role], FlaskClient], role: Role
) -> None:
    client = logged_in(role)
    home = client.get("/")
    assert home.status_code == 200 and client.get("/health/disk").status_code == 200
    token = csrf_token(client, "/")
    answer = client.post("/health/test-alert", data={"csrf_token": token})
    assert answer.status_code == (302 if role is Role.ADMINISTRATOR else 403)
    assert ('id="send-test-alert"' in home.get_data(as_text=True)) is (role is Role.ADMINISTRATOR)


def test_the_plots_draw_the_measures_and_the_receipts(logged_in: Callable[[Role], FlaskClient], engine: Engine) -> None:
    now = datetime.now(UTC)
    moments = daily_moments(now)
    for left, moment in enumerate(reversed(moments)):
        used = 1_450_000_000_000 - left * 5_000_000_000
        measures = [Measure("disk.data.used_bytes", used), Measure("disk.data.free_bytes", 3_000_000_000_000 - used)]
        measures.append(Measure("disk.data.days_left", 400.0))
        store.add_measures(engine, measures, moment)
    outage = now - timedelta(hours=5)
    store.record(
        engine, "ups", Reading([Finding("ups", "eaton", Severity.OK, "Sur secteur.")]), outage - timedelta(days=1)
    )
    store.record(engine, "ups", Reading([Finding("ups", "eaton", Severity.WARNING, "Sur batterie.")]), outage)
    store.record(
        engine, "ups", Reading([Finding("ups", "eaton", Severity.OK, "Sur secteur.")]), outage + timedelta(minutes=20)
    )
    for minute in range(0, 21, 2):
        store.add_measures(
            engine, [Measure("ups.eaton.charge", 100.0 - minute * 2)], outage + timedelta(minutes=minute)
        )
    index = Index(engine, publish=False)
    for number in range(3):
        dataset = make_instance("CT", PATIENTS[0], accession_number=f"PLOT{number}", instance_number=number + 1)
        index.add_instance(read_attributes(encoded(dataset)), WrittenFile(f"plot/{number}.dcm", 10, "0" * 64), "CT")
    page = html.unescape(logged_in(Role.SECRETARY).get("/").get_data(as_text=True))
    rendered = datetime.now(UTC)
    disk = page.split('id="disk-plot"')[1].split("</figure>")[0]
    assert disk.count('class="plot-line measure"') == 1 and 'class="plot-line forecast"' in disk
    assert 'class="plot-line limit"' in disk and "<title" in disk and "Plein" in disk
    assert (
        "plein dans 400 jours environ" in disk
        and "1,4\N{NO-BREAK SPACE}To occupés, 1,6\N{NO-BREAK SPACE}To libres. Au rythme" in disk
    )
    points = re.search(r'class="plot-line measure" points="([^"]+)"', disk)
    assert points is not None and len(points.group(1).split()) == points_drawn(moments, rendered)
    images = page.split('id="images-plot"')[1].split("</figure>")[0]
    assert images.count('<rect class="plot-bar"') == 90 and "3 images en 90 jours" in images
    assert "<table>" in images  # the values, for whoever cannot see the drawing
    studies = page.split('id="studies-plot"')[1].split("</figure>")[0]
    assert "3 examens en 90 jours, au plus 3 en une journée." in studies
    ups = page.split('id="ups-plot"')[1].split("</figure>")[0]
    assert "Sur batterie du" in ups and "Charge la plus basse : 60 %" in ups
    assert len(re.search(r'points="([^"]+)"', ups).group(1).split()) == 11  # type: ignore[union-attr]


def test_no_outage_and_no_measure_say_so(logged_in: Callable[[Role], FlaskClient]) -> None:
    page = html.unescape(logged_in(Role.SECRETARY).get("/").get_data(as_text=True))
    assert "Aucune coupure enregistrée." in page and "Aucune mesure du disque des images" in page
    assert "Rien reçu en 90 jours." in page
    assert "<svg" not in page.split('id="ups-plot"')[1].split("</figure>")[0]


class Inbox:
    """An aiosmtpd handler keeping what it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], Message]] = []

    # aiosmtpd calls the handler's method by this name
    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.received.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))  # type: ignore[attr-defined]
        return "250 Message accepted"


@pytest.fixture()
def relay() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def app_with_mail(tmp_path: Path, engine: Engine, events: Events, mail: MailConfig) -> Flask:
    settings = Settings(lambda: dataclasses.replace(development_config(tmp_path / "data"), mail=mail))
    application = create_app(settings, engine, events)
    application.config["TESTING"] = True
    return application


def administrator_of(application: Flask, engine: Engine) -> FlaskClient:
    users.create(engine, "c.bernard", "Claire Bernard", Role.ADMINISTRATOR, "Correct-Horse-42", "test")
    client = application.test_client()
    log_in(client, "c.bernard")
    return client


def test_a_test_alert_reaches_the_relay_and_is_recorded(
    tmp_path: Path, engine: Engine, events: Events, relay: tuple[Inbox, int]
) -> None:
    inbox, port = relay
    mail = MailConfig(
        "127.0.0.1", port, "pacs@cabinet.example", ("dr.martin@cabinet.example", "it@prestataire.example")
    )
    client = administrator_of(app_with_mail(tmp_path, engine, events, mail), engine)
    answer = client.post("/health/test-alert", data={"csrf_token": csrf_token(client, "/")}, follow_redirects=True)
    page = html.unescape(answer.get_data(as_text=True))
    assert "Alerte d'essai envoyée à dr.martin@cabinet.example, it@prestataire.example" in page
    [(recipients, message)] = inbox.received
    assert recipients == ["dr.martin@cabinet.example", "it@prestataire.example"]
    assert "Alerte d'essai" in message["Subject"] and message["From"] == "pacs@cabinet.example"
    assert "Claire Bernard (c.bernard)" in message.get_payload(decode=True).decode("utf-8")  # type: ignore[union-attr]
    [event] = events.of("110113")
    assert event.outcome is Outcome.SUCCESS and event.event_type is not None and event.event_type.code == "110132"
    assert event.requestor is not None and event.requestor.user_id == "c.bernard"
    assert event.objects[0].object_id == "mail alerts" and ("recipients", "2") in event.objects[0].details


def test_without_a_relay_the_test_alert_says_why(tmp_path: Path, engine: Engine, events: Events) -> None:
    client = administrator_of(app_with_mail(tmp_path, engine, events, MailConfig("", 25, "", ())), engine)
    answer = client.post("/health/test-alert", data={"csrf_token": csrf_token(client, "/")}, follow_redirects=True)
    page = html.unescape(answer.get_data(as_text=True))
    assert "Aucune alerte d'essai n'est partie : aucun relais de messagerie ou aucun destinataire" in page
    assert "Aucun destinataire des alertes par mail" in page
    [event] = events.of("110113")
    assert event.outcome is Outcome.MINOR_FAILURE and "no mail relay" in event.outcome_description


def test_a_relay_that_does_not_answer_is_named_in_the_message(tmp_path: Path, engine: Engine, events: Events) -> None:
    port = free_port()  # nothing listens there
    mail = MailConfig("127.0.0.1", port, "", ("dr.martin@cabinet.example",))
    client = administrator_of(app_with_mail(tmp_path, engine, events, mail), engine)
    answer = client.post("/health/test-alert", data={"csrf_token": csrf_token(client, "/")}, follow_redirects=True)
    page = html.unescape(answer.get_data(as_text=True))
    assert f"L'alerte d'essai n'a pas pu partir : relay 127.0.0.1:{port}" in page
    [event] = events.of("110113")
    assert event.outcome is Outcome.MINOR_FAILURE


def test_the_test_alert_needs_its_csrf_token(tmp_path: Path, engine: Engine, events: Events) -> None:
    client = administrator_of(app_with_mail(tmp_path, engine, events, MailConfig("", 25, "", ())), engine)
    assert client.post("/health/test-alert", data={}).status_code in (400, 403)
    assert not events.of("110113")
