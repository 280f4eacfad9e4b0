"""The health alerts through a real SMTP server on 127.0.0.1 (aiosmtpd): one mail per change of
state, a recovery once it has held, a flapping subject mailed once, the changes of one round in
one mail, nothing for a first-seen OK or an absent source, a relay down then up (the alert arrives
later, once, and the failure is logged once), the daily digest, the console's test alert; French
text and no patient data."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from mail_sink import Login, MailSink
from sqlalchemy import Engine

from appliance.config import Config, development_config
from appliance.config.loader import MailConfig
from appliance.monitor import Finding, Reading, Severity, store
from appliance.monitor.alerts import IMPROVEMENT_HOLD, Alerter
from appliance.monitor.mail import MailError, send_test_alert
from appliance.monitor.outbox import read as read_outbox
from appliance.monitor.rounds import Rounds
from appliance.outbox import Attempt, Outcome, RetryPolicy, enqueue, next_due, record
from appliance.practice_time import day_of

START = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)  # 10:00 in Paris
START_DAY = START.date()
MINUTE = timedelta(minutes=1)
PATIENT_NAME, PATIENT_ID = "ŒUVRARD^JEANNE", "PID-778899"


@pytest.fixture()
def sink() -> Iterator[MailSink]:
    server = MailSink().start()
    yield server
    server.stop()


@pytest.fixture()
def config(tmp_path: Path, sink: MailSink) -> Config:
    base = development_config(tmp_path / "data")
    mail = MailConfig("127.0.0.1", sink.port, "pacs@cabinet.example.fr", ("secretariat@cabinet.example.fr",))
    return dataclasses.replace(base, mail=mail, site_name="Cabinet Exemple")


def raid(severity: Severity, message: str = "", subject: str = "md127") -> Reading:
    messages = {
        Severity.OK: "Le RAID des données est sain.",
        Severity.WARNING: "Le RAID des données se reconstruit (45 %).",
        Severity.CRITICAL: "Le RAID des données est dégradé : un disque est en panne.",
    }
    detail = f"{subject} [U_] member sdb1 faulty, serial WD-1234"
    return Reading([Finding("raid", subject, severity, message or messages[severity], detail)])


def round_at(engine: Engine, config: Config, alerter: Alerter, reading: Reading, minutes: float) -> int:
    now = START + minutes * MINUTE
    store.record(engine, "raid", reading, now)
    return alerter.run(config, engine, now)


def alerter_of(tmp_path: Path, today: date = START_DAY) -> Alerter:
    """An alerter whose digest of `today` (Paris) is out: these tests are about alerts."""
    digest = tmp_path / "digest-sent"
    digest.write_text(f"{today.isoformat()}\n")
    return Alerter(digest)


def test_one_mail_per_change_then_one_recovery_once_it_has_held(
    engine: Engine, config: Config, sink: MailSink, tmp_path: Path
) -> None:
    alerter = alerter_of(tmp_path)
    round_at(engine, config, alerter, raid(Severity.OK), 0)
    assert sink.mails == [], "a first-seen OK is not news"
    round_at(engine, config, alerter, raid(Severity.CRITICAL), 1)
    round_at(engine, config, alerter, raid(Severity.CRITICAL), 2)
    [(subject, body)] = sink.mails
    assert subject == "[Cabinet Exemple] CRITIQUE : Le RAID des données est dégradé : un disque est en panne."
    assert "raid / md127 (nouveau problème)" in body
    assert "Depuis le 02/12/2026 à 10:01 (heure de Paris)." in body
    assert "Pour le prestataire : md127 [U_] member sdb1 faulty, serial WD-1234" in body

    round_at(engine, config, alerter, raid(Severity.OK), 3)
    round_at(engine, config, alerter, raid(Severity.OK), 8)
    assert len(sink.mails) == 1, "a recovery waits until it has held"
    round_at(engine, config, alerter, raid(Severity.OK), 3 + IMPROVEMENT_HOLD / MINUTE)
    round_at(engine, config, alerter, raid(Severity.OK), 20)
    assert len(sink.mails) == 2
    subject, body = sink.mails[1]
    assert subject == "[Cabinet Exemple] RÉTABLI : Le RAID des données est sain."
    assert "(résolu)" in body and "Depuis le 02/12/2026 à 10:03" in body
    assert store.unalerted(engine) == []


def test_a_warning_waits_for_a_second_round_and_a_flapping_subject_mails_once(
    engine: Engine, config: Config, sink: MailSink, tmp_path: Path
) -> None:
    alerter = alerter_of(tmp_path)
    round_at(engine, config, alerter, raid(Severity.OK), 0)
    round_at(engine, config, alerter, raid(Severity.WARNING), 1)
    assert sink.mails == [], "a warning seen once (a daemon starting, a passing peak) is not mailed yet"
    for minute in range(2, 30):  # warning, OK, warning, OK... every minute for half an hour
        round_at(engine, config, alerter, raid(Severity.WARNING if minute % 2 else Severity.OK), minute)
    assert [subject for subject, _ in sink.mails] == [
        "[Cabinet Exemple] ATTENTION : Le RAID des données se reconstruit (45 %)."
    ]
    for minute in range(30, 45):
        round_at(engine, config, alerter, raid(Severity.OK), minute)
    assert [subject.split(" : ")[0] for subject, _ in sink.mails] == [
        "[Cabinet Exemple] ATTENTION",
        "[Cabinet Exemple] RÉTABLI",
    ]


def test_the_changes_of_one_round_go_out_in_one_mail_worst_first(
    engine: Engine, config: Config, sink: MailSink, tmp_path: Path
) -> None:
    alerter = alerter_of(tmp_path)
    store.record(
        engine, "raid", Reading([*raid(Severity.OK).findings, *raid(Severity.OK, subject="md0").findings]), START
    )
    store.record(engine, "ups", Reading([Finding("ups", "ups", Severity.ABSENT, "Pas d'onduleur configuré.")]), START)
    alerter.run(config, engine, START)
    both = Reading([*raid(Severity.CRITICAL).findings, *raid(Severity.WARNING, subject="md0").findings])
    store.record(engine, "raid", both, START + MINUTE)
    store.record(engine, "raid", both, START + 2 * MINUTE)
    alerter.run(config, engine, START + 2 * MINUTE)
    [(subject, body)] = sink.mails
    assert subject == (
        "[Cabinet Exemple] CRITIQUE : Le RAID des données est dégradé : un disque est en panne. "
        "(et 1 autre(s) changement(s))"
    )
    assert body.index("CRITIQUE — raid / md127") < body.index("ATTENTION — raid / md0")
    assert "ups" not in body, "an absent source is never an alert"


def test_a_relay_down_keeps_the_alert_and_it_arrives_once_when_it_is_back(
    engine: Engine, config: Config, sink: MailSink, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    alerter = alerter_of(tmp_path)
    round_at(engine, config, alerter, raid(Severity.OK), 0)
    sink.stop()
    with caplog.at_level(logging.INFO, logger="appliance.monitor.alerts"):
        for minute in (1, 2, 3):
            assert round_at(engine, config, alerter, raid(Severity.CRITICAL), minute) == 0
        failures = [record for record in caplog.records if "not handed to the relay" in record.message]
        assert len(failures) == 1 and failures[0].levelno == logging.ERROR, "the failure is logged once"
        journaled = [record for record in caplog.records if "nouveau problème raid/md127" in record.message]
        assert len(journaled) == 1 and journaled[0].levelno == logging.ERROR, "the alert is in the journal once"
        assert [change.severity for change in store.unalerted(engine)] == [Severity.CRITICAL]
        sink.start()
        assert round_at(engine, config, alerter, raid(Severity.CRITICAL), 4) == 1
        round_at(engine, config, alerter, raid(Severity.CRITICAL), 5)
        assert any("takes mail again" in record.message for record in caplog.records)
    [(subject, body)] = sink.mails
    assert subject.startswith("[Cabinet Exemple] CRITIQUE") and "Depuis le 02/12/2026 à 10:01" in body


def test_the_daily_digest_lists_the_problems_then_says_all_is_well(
    engine: Engine, config: Config, sink: MailSink, tmp_path: Path
) -> None:
    digest_file = tmp_path / "digest-sent"
    digest_file.write_text("2026-12-01\n")
    alerter = Alerter(digest_file)
    morning = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)  # 07:00 in Paris, before the 07:30 digest
    store.record(engine, "raid", raid(Severity.OK), morning - timedelta(hours=2))
    store.record(engine, "raid", raid(Severity.CRITICAL), morning - timedelta(hours=1))
    alerter.run(config, engine, morning)
    assert [subject for subject, _ in sink.mails] == [
        "[Cabinet Exemple] CRITIQUE : Le RAID des données est dégradé : un disque est en panne."
    ]
    alerter.run(config, engine, morning + 31 * MINUTE)
    alerter.run(config, engine, morning + 40 * MINUTE)
    assert len(sink.mails) == 2, "one digest a day"
    subject, body = sink.mails[1]
    assert subject == "[Cabinet Exemple] Bilan quotidien : 1 problème(s) en cours (critique)"
    assert "Problèmes en cours :\n- CRITIQUE — raid / md127 : Le RAID des données est dégradé" in body
    assert "Changements des dernières 24 heures :" in body and "ok -> critical" in body

    next_morning = morning + timedelta(days=1, minutes=45)
    store.record(engine, "raid", raid(Severity.OK), morning + timedelta(hours=1))
    alerter.run(config, engine, next_morning)
    subject, body = sink.mails[-1]
    assert subject == "[Cabinet Exemple] Bilan quotidien : tout va bien"
    assert "Tout va bien : aucun problème en cours." in body


def test_the_first_start_sends_no_digest_until_the_next_one_is_due(
    engine: Engine, config: Config, sink: MailSink, tmp_path: Path
) -> None:
    alerter = Alerter(tmp_path / "monitor" / "digest-sent")
    after_digest_time = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    alerter.run(config, engine, after_digest_time)
    alerter.run(config, engine, after_digest_time + timedelta(hours=20))  # 05:00 next day in Paris
    assert sink.mails == []
    alerter.run(config, engine, after_digest_time + timedelta(hours=23, minutes=31))
    assert [subject for subject, _ in sink.mails] == ["[Cabinet Exemple] Bilan quotidien : tout va bien"]


def test_the_console_s_test_alert_arrives(config: Config, sink: MailSink) -> None:
    send_test_alert(config, "admin.dupont", START)
    [message] = sink.messages
    assert message["Subject"] == "[Cabinet Exemple] Alerte d'essai"
    assert message["To"] == "secretariat@cabinet.example.fr" and message["From"] == "pacs@cabinet.example.fr"
    assert "alerte d'essai envoyée depuis la console" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_relay_that_asks_for_a_login_gets_the_password_from_its_file(config: Config, tmp_path: Path) -> None:
    relay = MailSink(Login("pacs@cabinet.example.fr", "s3cret-relais")).start()
    try:
        password_file = tmp_path / "mail-password"
        anonymous = dataclasses.replace(config.mail, relay_port=relay.port)
        with pytest.raises(MailError, match=r"530|[Aa]uthentication"):
            send_test_alert(dataclasses.replace(config, mail=anonymous), "admin.dupont", START)
        logged = dataclasses.replace(anonymous, username="pacs@cabinet.example.fr", password_file=str(password_file))
        with pytest.raises(MailError, match=r"mail\.password_file"):
            send_test_alert(dataclasses.replace(config, mail=logged), "admin.dupont", START)
        password_file.write_text("s3cret-relais\n")
        send_test_alert(dataclasses.replace(config, mail=logged), "admin.dupont", START)
        assert relay.login is not None and relay.login.accepted == ["pacs@cabinet.example.fr"]
        assert [subject for subject, _ in relay.mails] == ["[Cabinet Exemple] Alerte d'essai"]
    finally:
        relay.stop()


def test_an_alert_about_messages_to_the_ris_carries_no_patient_data(
    engine: Engine, config: Config, sink: MailSink, tmp_path: Path
) -> None:
    payload = f"MSH|^~\\&|PACS|CAB|RIS|CAB|20261202||ORM^O01|1|P|2.5\rPID|||{PATIENT_ID}||{PATIENT_NAME}\r"
    with engine.begin() as connection:
        enqueue(connection, "hl7-ris", "change:1", "ORM^O01", payload.encode(), f"ORM^O01 {PATIENT_ID}")
    last_round = datetime.now(UTC) + timedelta(seconds=120)  # this test runs on the clock (the outbox's)
    rounds, alerter = Rounds({"outbox": read_outbox}), alerter_of(tmp_path, day_of(last_round))
    rounds.run(config, engine, datetime.now(UTC))
    message = next_due(engine, ("hl7-ris",))
    assert message is not None
    record(engine, message, Attempt(Outcome.REFUSED, f"AE unknown patient {PATIENT_ID}"), RetryPolicy(1, 1, 1))
    for seconds in (60, 120):
        now = datetime.now(UTC) + timedelta(seconds=seconds)
        rounds.run(config, engine, now)
        alerter.run(config, engine, now)
    [message] = sink.messages
    raw = message.as_string()
    assert "mis de côté" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    for patient_data in (PATIENT_ID, "ŒUVRARD", "OEUVRARD", "JEANNE"):
        assert patient_data not in raw
