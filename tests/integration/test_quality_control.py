"""The daily quality-control report (Q1) made on a real archive: images through the real ingest,
a real borg backup and restore drill to a local repository, the real audit trail, the monitor's
store holding the findings a test machine cannot produce (a RAID array, SMART disks, a UPS).
Everything green; then a corrupted file in the day's sample and a critical RAID finding: a failed
report, its mail (a real SMTP sink), the monitor's critical finding; the rolling cursor covering
the archive in N days; the PDF rendered, its first page turned into a PNG and checked."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from backup_rig import ingest_of, receive_study
from mail_sink import MailSink
from PIL import Image
from sqlalchemy import Engine, select

from appliance.audit.activity import local_user, this_application
from appliance.audit.events import Action, AuditEvent, EventId, Outcome
from appliance.audit.trail import AuditTrail, verify_file
from appliance.backup.drill import run_drill
from appliance.backup.local import prepare_development_repository
from appliance.backup.nightly import run_backup
from appliance.config import Config, MailConfig, QcConfig, development_config
from appliance.daemons.runtime import open_index
from appliance.db.schema import instance
from appliance.monitor import qc as qc_source
from appliance.monitor import store as monitor_store
from appliance.monitor.findings import Finding, Reading, Severity
from appliance.monitor.sources import Context
from appliance.qc import render, store
from appliance.qc.daily import run_daily
from appliance.qc.report import Status

NOW = datetime(2026, 12, 4, 6, 30, tzinfo=UTC)
HEALTHY = {
    "raid": [Finding("raid", "md0", Severity.OK, "Le RAID des données est sain.")],
    "smart": [Finding("smart", "sda", Severity.OK, "Disque sda sain."),
              Finding("smart", "sdb", Severity.OK, "Disque sdb sain.")],
    "ups": [Finding("ups", "eaton", Severity.OK, "Onduleur sur secteur, batterie chargée.")],
    "services": [Finding("services", "appliance-dicom", Severity.OK, "L'archive DICOM fonctionne.")],
    "dicom": [Finding("dicom", "worklist", Severity.OK, "La liste de travail répond."),
              Finding("dicom", "archive", Severity.OK, "L'archive DICOM répond.")],
    "disk": [Finding("disk", "data", Severity.OK, "Espace libre suffisant."),
             Finding("disk", "forecast", Severity.OK, "Plein dans plus d'un an.")],
}  # fmt: skip


@pytest.fixture()
def sink() -> Iterator[MailSink]:
    server = MailSink().start()
    yield server
    server.stop()


@pytest.fixture()
def config(tmp_path: Path, sink: MailSink) -> Config:
    base = development_config(tmp_path / "data")
    mail = MailConfig("127.0.0.1", sink.port, "pacs@cabinet.example.fr", ("qualite@cabinet.example.fr",))
    return dataclasses.replace(base, mail=mail, site_name="Cabinet Exemple", qc=QcConfig("06:30", 2))


@pytest.fixture(scope="module")
def backed_up(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder made once (borg takes a while): two studies (6 images) received, a real backup
    and a drill to its local repository, an audit trail with a record. Each test gets a copy."""
    config = development_config(tmp_path_factory.mktemp("template") / "data")
    engine = open_index(config)
    ingest = ingest_of(config)
    receive_study(ingest, 4, patient_number=0, seed=1)
    receive_study(ingest, 2, patient_number=1, seed=2)
    prepare_development_repository(config)
    assert all(record.succeeded for record in run_backup(config, clock=lambda: NOW - timedelta(hours=4)))
    assert run_drill(config, sample_size=2, seed=1, clock=lambda: NOW - timedelta(hours=3)).succeeded
    trail = AuditTrail(config.audit.database)
    trail.record(AuditEvent(EventId.APPLICATION_ACTIVITY, Action.EXECUTE, Outcome.SUCCESS,
                            (local_user(), this_application("appliance-test"))))  # fmt: skip
    trail.close()
    ingest.index.engine.dispose()
    engine.dispose()
    return config.storage.data_directory


@pytest.fixture()
def archive(config: Config, backed_up: Path) -> Iterator[Engine]:
    shutil.copytree(backed_up, config.storage.data_directory, symlinks=True)
    engine = open_index(config)
    yield engine
    engine.dispose()


def record_health(engine: Engine, at: datetime, overrides: dict[str, list[Finding]] | None = None) -> None:
    for source, findings in {**HEALTHY, **(overrides or {})}.items():
        monitor_store.record(engine, source, Reading(findings), at)


def make(config: Config, engine: Engine, now: datetime = NOW, force: bool = False) -> store.StoredReport:
    return run_daily(config, engine, now, lambda: verify_file(config.audit.database), force).report


def test_everything_green_is_a_compliant_report_mailed_with_its_fingerprints(
    config: Config, archive: Engine, sink: MailSink
) -> None:
    record_health(archive, NOW - timedelta(minutes=1))
    kept = make(config, archive)
    report = kept.report
    assert {section.key: section.status for section in report.sections} == {
        "fixity": Status.OK, "lossless": Status.OK, "backup": Status.OK, "drill": Status.OK, "raid": Status.OK,
        "smart": Status.OK, "ups": Status.OK, "services": Status.OK, "worklist": Status.OK, "disk": Status.OK,
        "audit": Status.OK,
    }  # fmt: skip
    assert kept.status is Status.OK and kept.intact and report.day.isoformat() == "2026-12-04"
    assert report.number("fixity", "checked") == 3 and report.number("fixity", "total") == 6  # half: N = 2 days
    assert report.number("audit", "last_seq") >= 1 and len(report.number("audit", "last_hash")) == 64
    [(subject, body)] = sink.mails
    assert subject == "[Cabinet Exemple] Contrôle qualité du 04/12/2026 : conforme"
    assert kept.facts_sha256 in body and report.number("audit", "last_hash") in body
    assert "1.2.840" not in body  # no UIDs, no patient data in the mail
    again = run_daily(config, archive, NOW + timedelta(hours=1), lambda: verify_file(config.audit.database))
    assert not again.made and again.report.id == kept.id and len(sink.mails) == 1  # once a day


def test_the_rolling_sample_covers_the_whole_archive_in_n_days_and_wraps(config: Config, archive: Engine) -> None:
    record_health(archive, NOW)
    seen: list[tuple[int, int]] = []
    for day in range(3):
        report = make(config, archive, NOW + timedelta(days=day)).report
        seen.append((report.number("fixity", "first_id"), report.number("fixity", "last_id")))
        assert report.number("fixity", "wrapped") is (day == 2)
    with archive.connect() as connection:
        identifiers = sorted(connection.scalars(select(instance.c.id)))
    assert seen == [
        (identifiers[0], identifiers[2]),
        (identifiers[3], identifiers[5]),
        (identifiers[0], identifiers[2]),
    ]


def test_a_corrupted_file_in_the_sample_and_a_failed_raid_make_a_failed_report_a_mail_and_a_finding(
    config: Config, archive: Engine, sink: MailSink
) -> None:
    degraded = [Finding("raid", "md0", Severity.CRITICAL, "Le RAID des données est dégradé : un disque est en panne.")]
    record_health(archive, NOW - timedelta(minutes=1), {"raid": degraded})
    with archive.connect() as connection:
        first = connection.execute(select(instance.c.path).order_by(instance.c.id).limit(1)).scalar_one()
    damaged = config.storage.archive_directory / first
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"\x00")  # one byte of pixel data changed on disk
    kept = make(config, archive)
    report = kept.report
    assert kept.status is Status.FAILURE
    fixity, raid = report.section("fixity"), report.section("raid")
    assert fixity is not None and fixity.status is Status.FAILURE and fixity.numbers["altered"] == 1
    assert any(first in line and "Altéré" in line for line in fixity.lines)
    assert raid is not None and raid.status is Status.FAILURE and "dégradé" in raid.summary
    [(subject, body)] = sink.mails
    assert subject.endswith("ÉCHEC") and "Intégrité des images (échantillon tournant) : ÉCHEC" in body
    assert first not in body  # the damaged file is named in the console's report, not in the mail
    reading = qc_source.read(Context(config, archive, NOW + timedelta(minutes=5)))
    [finding] = reading.findings
    assert finding.severity is Severity.CRITICAL and "RAID" in finding.message and "Intégrité" in finding.message


def test_a_signed_report_is_never_made_again_and_an_edit_of_its_facts_shows(config: Config, archive: Engine) -> None:
    record_health(archive, NOW)
    kept = make(config, archive)
    store.sign(archive, kept.id, "dr.martin", "Dr Claire Martin", "", NOW + timedelta(hours=2))
    with pytest.raises(store.AlreadySigned):
        make(config, archive, NOW + timedelta(hours=3), force=True)
    with pytest.raises(store.AlreadySigned):
        store.sign(archive, kept.id, "dr.autre", "Dr Autre", "", NOW + timedelta(hours=4))
    with archive.begin() as connection:
        from appliance.db.schema import qc_report

        connection.execute(qc_report.update().values(facts=kept.facts.replace('"ok"', '"ok" ', 1)))
    tampered = store.get(archive, kept.id)
    assert tampered is not None and not tampered.intact


def test_the_pdf_is_a4_and_its_first_page_shows_the_report(config: Config, archive: Engine, tmp_path: Path) -> None:
    record_health(archive, NOW)
    kept = make(config, archive)
    store.sign(archive, kept.id, "dr.martin", "Dr Claire Martin", "Relu.", NOW + timedelta(hours=2))
    signed = store.get(archive, kept.id)
    assert signed is not None
    document = tmp_path / "rapport.pdf"
    document.write_bytes(render.pdf(signed))
    assert document.read_bytes().startswith(b"%PDF-")
    information = subprocess.run(["pdfinfo", str(document)], capture_output=True, text=True, check=True).stdout
    assert "(A4)" in information
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(document), str(tmp_path / "page")],
                   check=True, timeout=60)  # fmt: skip
    [png] = sorted(tmp_path.glob("page*.png"))
    with Image.open(png) as page:
        width, height = page.size
        assert abs(height / width - 297 / 210) < 0.01  # portrait A4
        grey = page.convert("L")
        dark = sum(grey.histogram()[:128])
        assert dark > width * height * 0.005  # text and table lines, not a blank page
        assert grey.getextrema()[0] < 50
    text = subprocess.run(["pdftotext", str(document), "-"], capture_output=True, text=True, check=True).stdout
    assert "Contrôle qualité du système d'archivage" in text and "Dr Claire Martin" in text
    assert signed.facts_sha256 in text.replace("\n", "")
