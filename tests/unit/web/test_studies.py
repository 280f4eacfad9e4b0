"""The study search and the study page: what they show, who may open them, what they record in the
audit trail, and bad input answered next to its field. Data goes in through the real domain: the
RIS's patient and order (`patients.identities`, `worklist.scheduling`) and DICOM files stored by
`archive.ingest`."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
from console_client import Events
from datagen import PATIENTS, encoded, make_instance
from flask.testing import FlaskClient
from pydicom.uid import CTImageStorage, generate_uid
from sqlalchemy import Engine, select, update
from worklist_data import new_order, schedule

from appliance.accounts.roles import Role
from appliance.archive.index import Index
from appliance.archive.ingest import IncomingObject, Ingest, StoreOutcome
from appliance.archive.storage import FileStore
from appliance.config import Config, Settings
from appliance.config.loader import config_from_document, development_document
from appliance.db.schema import instance
from appliance.patients.identities import Identifier, IdentityPolicy, PatientIdentity, Source, record_patient
from appliance.patients.national import INS_NIR_OID
from appliance.practice_time import today as practice_today

HEART_STUDY = generate_uid()
INS = "260058815400233"


def config_with_peers(data: Path) -> Config:
    document = development_document(data)
    document["peers"].append({"ae_title": "CT_SALLE1", "host": "192.168.10.21", "rights": ["store", "worklist"]})
    return config_from_document(document, "test")


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings(lambda: config_with_peers(tmp_path / "data"))


def store(ingest: Ingest, dataset: object, calling_ae_title: str) -> None:
    incoming = IncomingObject(encoded(dataset), dataset.SOPInstanceUID, dataset.SOPClassUID, calling_ae_title)  # type: ignore[attr-defined]
    assert ingest.store(incoming).outcome is StoreOutcome.STORED


def small_instance(modality: str, patient: object, day: date, **values: object) -> object:
    dataset = make_instance(modality, patient, study_date=f"{day:%Y%m%d}", **values)  # type: ignore[arg-type]
    dataset.Rows = dataset.Columns = 8
    dataset.PixelData = b"\0" * (
        8 * 8 * dataset.SamplesPerPixel * (dataset.BitsAllocated // 8) * int(dataset.get("NumberOfFrames", 1))
    )
    return dataset


@pytest.fixture()
def archive(engine: Engine, settings: Settings, tmp_path: Path) -> Engine:
    """CŒUR Marie: known from the RIS (qualified, INS), ordered and imaged today (3 CT images from
    CT_SALLE1); ŒUVRARD Chloé imaged yesterday; DUPONT Jean-François in June 2025."""
    identity = PatientIdentity(
        ipp=Identifier("IPP0100", "CABINET", "", "PI"),
        other_identifiers=(Identifier(INS, "ASIP-SANTE-INS-NIR", INS_NIR_OID, "INS"),),
        birth_name="CŒUR",
        first_given_name="Marie",
        sex="F",
        birth_date="19600530",
        identity_status=("VALI",),
    )
    with engine.begin() as connection:
        patient_pk = record_patient(
            connection, identity, Source("RIS", "CABINET", "ADT^A28", "M1"), IdentityPolicy(True)
        )
    assert patient_pk.patient_pk is not None
    today = practice_today()
    order = new_order(1, station="CT_SALLE1", day=today, study_instance_uid=HEART_STUDY, accession_number="ACC100")
    schedule(engine, settings.current, order, patient_pk.patient_pk)
    ingest = Ingest(FileStore(tmp_path / "data", 0), Index(engine))
    series_uid = generate_uid()
    heart = PATIENTS[0].__class__("IPP0100", "COEUR^MARIE", "19600530", "F", "ISO_IR 100")
    for number in (1, 2, 3):
        store(ingest, small_instance("CT", heart, today, study_uid=HEART_STUDY, series_uid=series_uid,
                                     instance_number=number, accession_number="ACC100"), "CT_SALLE1")  # fmt: skip
    store(ingest, small_instance("MR", PATIENTS[0], today - timedelta(days=1), accession_number="ACC200"), "MR_X")
    store(ingest, small_instance("US", PATIENTS[1], date(2025, 6, 30), accession_number="ACC300"), "US_X")
    return engine


def queries(events: Events) -> list[dict[str, str]]:
    return [json.loads(event.objects[0].query) for event in events.of("110112")]


@pytest.mark.parametrize("role", [Role.SECRETARY, Role.TECHNOLOGIST, Role.RADIOLOGIST, Role.ADMINISTRATOR])
def test_clinical_roles_may_search_and_open_studies(
    archive: Engine, logged_in: Callable[[Role], FlaskClient], role: Role
) -> None:
    client = logged_in(role)
    assert client.get("/studies").status_code == 200
    assert client.get(f"/studies/{HEART_STUDY}").status_code == 200


def test_maintenance_and_strangers_may_not(
    archive: Engine, logged_in: Callable[[Role], FlaskClient], client: FlaskClient, events: Events
) -> None:
    maintenance = logged_in(Role.MAINTENANCE)
    assert maintenance.get("/studies").status_code == 403
    assert maintenance.get(f"/studies/{HEART_STUDY}").status_code == 403
    assert client.get("/studies").status_code == 302  # to the login page
    assert client.get(f"/studies/{HEART_STUDY}").headers["Location"].startswith("/login")
    assert not events.of("110112") and not events.of("110103")


def test_an_empty_search_shows_todays_studies_and_is_audited_as_a_query(
    archive: Engine, logged_in: Callable[[Role], FlaskClient], events: Events
) -> None:
    page = logged_in(Role.SECRETARY).get("/studies").get_data(as_text=True)
    assert "Examens du jour" in page
    assert "CŒUR Marie" in page and "ACC100" in page and "CT_SALLE1" not in page
    assert "ŒUVRARD" not in page and "DUPONT" not in page
    (event,) = events.of("110112")
    assert event.action == "E" and event.requestor.user_id == "user-secretary"  # type: ignore[union-attr]
    assert event.objects[0].kind == "query" and event.objects[0].object_id == "1.2.840.10008.5.1.4.1.2.2.1"
    today = f"{practice_today():%Y%m%d}"
    assert queries(events) == [{"first_day": today, "last_day": today}]


@pytest.mark.parametrize(
    ("arguments", "found", "absent"),
    [
        ({"patient_name": "coeur"}, ["CŒUR Marie"], ["ŒUVRARD", "DUPONT"]),
        ({"patient_name": "chloe oeuvrard"}, ["ŒUVRARD Chloé"], ["CŒUR", "DUPONT"]),
        ({"patient_id": "IPP0002"}, ["DUPONT Jean-François"], ["CŒUR", "ŒUVRARD"]),
        ({"national_identifier": "2 60 05 88 154 002 33"}, ["CŒUR Marie"], ["ŒUVRARD", "DUPONT"]),
        ({"accession_number": "ACC200"}, ["ŒUVRARD Chloé"], ["CŒUR", "DUPONT"]),
        ({"preset": "yesterday"}, ["ŒUVRARD Chloé"], ["CŒUR", "DUPONT"]),
        ({"first_day": "2025-01-01", "last_day": "2025-12-31"}, ["DUPONT Jean-François"], ["CŒUR", "ŒUVRARD"]),
        ({"modality": "MR"}, ["ŒUVRARD Chloé"], ["CŒUR", "DUPONT"]),
    ],
)
def test_search_by_each_key(
    archive: Engine,
    logged_in: Callable[[Role], FlaskClient],
    events: Events,
    arguments: dict[str, str],
    found: list[str],
    absent: list[str],
) -> None:
    page = logged_in(Role.SECRETARY).get("/studies", query_string=arguments).get_data(as_text=True)
    assert all(text in page for text in found), page
    assert not any(text in page for text in absent)
    assert len(events.of("110112")) == 1


def test_the_result_table_shows_the_french_way(archive: Engine, logged_in: Callable[[Role], FlaskClient]) -> None:
    page = logged_in(Role.SECRETARY).get("/studies?patient_name=coeur").get_data(as_text=True)
    row = page[page.index(f'data-study-uid="{HEART_STUDY}"') :].split("</tr>")[0]
    assert "CŒUR Marie" in row and "30/05/1960" in row and "IPP0100" in row
    assert f"{practice_today():%d/%m/%Y}" in row and "ACC100" in row and "CT thorax" in row
    assert f'href="/studies/{HEART_STUDY}"' in row


def test_pages_of_fifty_follow_each_other(
    archive: Engine, logged_in: Callable[[Role], FlaskClient], events: Events, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("appliance.web.studies.views.PAGE_SIZE", 1)
    client = logged_in(Role.SECRETARY)
    first = client.get("/studies?first_day=2025-01-01").get_data(as_text=True)  # three studies, one a page
    names = ["CŒUR Marie" in first]
    link = first.split('id="next-page" href="')[1].split('"')[0].replace("&amp;", "&")
    second = client.get(link).get_data(as_text=True)
    names.append("ŒUVRARD Chloé" in second)
    link = second.split('id="next-page" href="')[1].split('"')[0].replace("&amp;", "&")
    third = client.get(link).get_data(as_text=True)
    names.append("DUPONT Jean-François" in third)
    assert names == [True, True, True]
    assert 'id="next-page"' not in third and 'id="first-page"' in third
    assert len(events.of("110112")) == 3 and "after" in queries(events)[2]


@pytest.mark.parametrize(
    ("arguments", "field", "words"),
    [
        ({"national_identifier": "1234"}, "national_identifier", "15 caractères"),
        ({"first_day": "2026-03-02", "last_day": "2026-03-01"}, "last_day", "précède son début"),
        ({"first_day": "hier"}, "first_day", "date"),
        ({"modality": "XYZ"}, "modality", ""),
    ],
)
def test_bad_input_is_answered_next_to_its_field_and_searches_nothing(
    archive: Engine,
    logged_in: Callable[[Role], FlaskClient],
    events: Events,
    arguments: dict[str, str],
    field: str,
    words: str,
) -> None:
    answer = logged_in(Role.SECRETARY).get("/studies", query_string=arguments)
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200
    errors = page.split(f'id="{field}-errors"')[1].split("</ul>")[0]
    assert words in errors
    assert 'id="studies"' not in page and not events.of("110112")


def test_the_study_page_shows_patient_study_series_senders_order_and_history(
    archive: Engine, logged_in: Callable[[Role], FlaskClient]
) -> None:
    page = logged_in(Role.SECRETARY).get(f"/studies/{HEART_STUDY}").get_data(as_text=True)
    patient = page.split('id="patient"')[1].split("</section>")[0]
    assert "CŒUR Marie" in patient and "30/05/1960" in patient and "féminin" in patient
    assert "IPP0100" in patient and "CABINET" in patient and "identité qualifiée" in patient
    assert INS in patient and "INS-NIR" in patient and "transmis aux modalités" in patient
    assert "ACC100" in page.split('id="study"')[1]
    series = page.split('id="series"')[1].split("</table>")[0]
    assert "CT" in series and "CHEST" in series and "Explicit VR Little Endian" in series and "non compressé" in series
    assert '<td class="number">3</td>' in series
    senders = page.split('id="senders"')[1].split("</table>")[0]
    assert "CT_SALLE1" in senders and "192.168.10.21" in senders
    order = page.split('id="order"')[1].split("</section>")[0]
    assert "Scanner thoracique" in order and "PLACER1" in order and "programmé" in order
    history = page.split('id="identity-history"')[1].split("</table>")[0]
    assert "patient créé" in history and "RIS" in history and "ADT^A28" in history


def test_the_study_page_is_audited_with_the_patient_and_the_study(
    archive: Engine, logged_in: Callable[[Role], FlaskClient], events: Events
) -> None:
    logged_in(Role.RADIOLOGIST).get(f"/studies/{HEART_STUDY}")
    (event,) = events.of("110103")
    assert event.action == "R" and event.requestor.user_id == "user-radiologist"  # type: ignore[union-attr]
    assert [participant.kind for participant in event.participants] == ["person", "application"]
    patient, study = event.objects
    assert (patient.kind, patient.object_id, patient.name) == ("patient", "IPP0100^^^CABINET", "CŒUR^Marie")
    assert (study.kind, study.object_id, study.accession_number) == ("study", HEART_STUDY, "ACC100")
    assert study.instances == ((CTImageStorage, 3),)
    assert not events.of("110112")


def test_an_unknown_study_is_a_clear_404(
    archive: Engine, logged_in: Callable[[Role], FlaskClient], events: Events
) -> None:
    client = logged_in(Role.SECRETARY)
    for uid in ("1.2.3.4", "not-a-uid"):
        answer = client.get(f"/studies/{uid}")
        assert answer.status_code == 404
        assert "aucun examen avec ce Study Instance UID" in answer.get_data(as_text=True).replace("&#39;", "'")
    assert not events.of("110103")


def test_the_study_page_says_when_images_were_made_lossy_in_the_deferred_tier(
    archive: Engine, logged_in: Callable[[Role], FlaskClient]
) -> None:
    client = logged_in(Role.RADIOLOGIST)
    assert 'id="lossy-copies"' not in client.get(f"/studies/{HEART_STUDY}").get_data(as_text=True)
    with archive.begin() as connection:  # what `archive.tiers` records for two lossy copies
        ids = list(connection.execute(select(instance.c.id).order_by(instance.c.id).limit(2)).scalars())
        flagged = update(instance).where(instance.c.id.in_(ids))
        connection.execute(flagged.values(lossy=True, lossy_source_uid=instance.c.sop_instance_uid))
    page = html.unescape(client.get(f"/studies/{HEART_STUDY}").get_data(as_text=True))
    notice = page.split('id="lossy-copies">')[1].split("</p>")[0]
    assert notice.startswith("Compression avec perte : 2 images de cette étude")
