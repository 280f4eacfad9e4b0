"""Weasis from the console: the `weasis://` addresses of both launch paths, the manifest (format 2.5,
valid against Weasis's published schema, current identity after an A40 merge), its one-time token
refused on second use, the WADO bearer token it carries, and the audit records."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote_plus, urlsplit
from xml.etree import ElementTree

import pytest
from console_client import Events
from datagen import PATIENTS, encoded, make_instance
from flask.testing import FlaskClient
from pydicom.uid import generate_uid
from sqlalchemy import Engine

from appliance.accounts import tokens
from appliance.accounts.roles import Role
from appliance.archive.index import Index
from appliance.archive.ingest import IncomingObject, Ingest
from appliance.archive.storage import FileStore
from appliance.config import Settings
from appliance.patients.identities import IdentityPolicy, PatientIdentity, Source, merge_patients
from appliance.patients.national import Identifier
from appliance.web.viewer.weasis import NAMESPACE

SCHEMA = Path(__file__).parents[2] / "data" / "weasis" / "manifest-2.5.xsd"
NS = {"w": NAMESPACE}


@pytest.fixture()
def two_studies(engine: Engine, settings: Settings) -> list[str]:
    """Two studies of DUPONT Jean-François (IPP0002): a CT of 3 images (2 series) and an MR of 2."""
    ingest = Ingest(FileStore(settings.current.storage.data_directory, 0), Index(engine))
    studies = []
    for modality, counts in (("CT", (2, 1)), ("MR", (2,))):
        study_uid = generate_uid()
        for count in counts:
            series_uid = generate_uid()
            for number in range(1, count + 1):
                dataset = make_instance(modality, PATIENTS[1], study_uid, series_uid, number, accession_number="A1")
                dataset.Rows = dataset.Columns = 8
                dataset.PixelData = b"\0" * 128
                ingest.store(IncomingObject(encoded(dataset), dataset.SOPInstanceUID, dataset.SOPClassUID, "X"))
        studies.append(study_uid)
    return studies


def command_of(client: FlaskClient, address: str) -> str:
    answer = client.get(address)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith("weasis://") and " " not in location
    return unquote_plus(location.removeprefix("weasis://"))


def manifest_address(client: FlaskClient, study_uid: str, scope: str = "study") -> str:
    command = command_of(client, f"/viewer/weasis/{study_uid}?path=manifest&scope={scope}")
    assert command.startswith('$dicom:get -w "http://localhost/viewer/weasis/manifest/') and command.endswith('"')
    return urlsplit(command.split('"')[1])._replace(scheme="", netloc="").geturl()


@pytest.mark.skipif(shutil.which("xmllint") is None, reason="xmllint (libxml2-utils) is not installed")
def test_the_manifest_is_valid_for_weasis_and_used_once(
    two_studies: list[str], app: object, logged_in: Callable[[Role], FlaskClient], events: Events, tmp_path: Path
) -> None:
    address = manifest_address(logged_in(Role.RADIOLOGIST), two_studies[0])
    weasis = FlaskClient(app)  # type: ignore[arg-type]  # Weasis has no session cookie
    answer = weasis.get(address)
    assert answer.status_code == 200 and answer.mimetype == "application/xml"
    written = tmp_path / "manifest.xml"
    written.write_bytes(answer.data)
    checked = subprocess.run(
        ["xmllint", "--noout", "--schema", str(SCHEMA), str(written)], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stderr
    root = ElementTree.fromstring(answer.data)
    query = root.find("w:arcQuery", NS)
    assert query is not None and query.get("baseUrl") == "http://localhost/wado"
    (header,) = query.findall("w:httpTag", NS)
    assert header.get("key") == "Authorization" and str(header.get("value")).startswith("Bearer ")
    (person,) = query.findall("w:Patient", NS)
    assert person.get("PatientID") == "IPP0002" and person.get("PatientName") == "DUPONT^Jean-François"
    (study,) = person.findall("w:Study", NS)
    assert study.get("StudyInstanceUID") == two_studies[0]
    series = study.findall("w:Series", NS)
    assert [len(entry.findall("w:Instance", NS)) for entry in series] == [2, 1]
    assert {entry.get("WadoTransferSyntaxUID") for entry in series} == {"*"}
    assert weasis.get(address).status_code == 404  # the one-time token is used up
    handed = [event for event in events.of("110103") if event.participants[0].user_id == "user-radiologist"]
    assert len(handed) == 2  # the click in the console, then Weasis fetching the manifest
    assert {event.objects[1].object_id for event in handed} == {two_studies[0]}


def test_the_manifest_bearer_token_opens_dicomweb_for_the_same_account(
    two_studies: list[str], app: object, engine: Engine, logged_in: Callable[[Role], FlaskClient]
) -> None:
    address = manifest_address(logged_in(Role.SECRETARY), two_studies[0])
    body = FlaskClient(app).get(address).data  # type: ignore[arg-type]
    header = ElementTree.fromstring(body).find("w:arcQuery/w:httpTag", NS)
    assert header is not None
    bearer = str(header.get("value")).removeprefix("Bearer ")
    account = tokens.check(engine, bearer)
    assert account is not None and account.username == "user-secretary"
    assert tokens.consume(engine, bearer) is None  # a DICOMweb token is not a one-time token


def test_a_patient_manifest_holds_every_study_and_the_current_identity_after_a_merge(
    two_studies: list[str], app: object, engine: Engine, logged_in: Callable[[Role], FlaskClient]
) -> None:
    survivor = PatientIdentity(
        ipp=Identifier("IPP0900", "CABINET", "", "PI"),
        birth_name="DUPONT-MOREAU",
        first_given_name="Jean-François",
        sex="M",
        birth_date="19750203",
        identity_status=("VALI",),
    )
    with engine.begin() as connection:
        merge_patients(
            connection,
            survivor,
            Identifier("IPP0002", "CABINET", "", "PI"),
            Source("RIS", "CAB", "ADT^A40", "M9"),
            IdentityPolicy(refuse_test_ins=True),
        )
    address = manifest_address(logged_in(Role.RADIOLOGIST), two_studies[1], scope="patient")
    root = ElementTree.fromstring(FlaskClient(app).get(address).data)  # type: ignore[arg-type]
    (person,) = root.findall("w:arcQuery/w:Patient", NS)
    assert person.get("PatientID") == "IPP0900" and str(person.get("PatientName")).startswith("DUPONT-MOREAU^")
    assert [study.get("StudyInstanceUID") for study in person.findall("w:Study", NS)] == [
        two_studies[1],
        two_studies[0],
    ]


def test_the_dicomweb_path_hands_weasis_a_bearer_token(
    two_studies: list[str], engine: Engine, logged_in: Callable[[Role], FlaskClient], events: Events
) -> None:
    command = command_of(logged_in(Role.TECHNOLOGIST), f"/viewer/weasis/{two_studies[0]}?path=dicomweb&scope=patient")
    assert command.startswith('$dicom:rs --url "http://localhost/dicomweb" ')
    assert f'-r "studyUID={two_studies[0]}" -r "studyUID={two_studies[1]}"' in command
    bearer = command.split('-H "Authorization: Bearer ')[1].rstrip('"')
    account = tokens.check(engine, bearer)
    assert account is not None and account.username == "user-technologist"
    (handed,) = events.of("110103")
    assert [item.object_id for item in handed.objects] == ["IPP0002^^^CABINET", *two_studies]


def test_forged_or_unknown_tokens_open_nothing(
    two_studies: list[str], client: FlaskClient, make_account: Callable[..., object]
) -> None:
    make_account("admin", Role.ADMINISTRATOR)
    assert client.get(f"/viewer/weasis/manifest/forged-token/{two_studies[0]}").status_code == 404
    assert client.get(f"/viewer/weasis/{two_studies[0]}").headers["Location"].startswith("/login")
