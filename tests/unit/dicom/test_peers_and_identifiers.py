"""Who may associate (A6), and in which character set answers are written."""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset

from appliance.config import Settings, development_config
from appliance.config.loader import config_from_document
from appliance.dicom.identifiers import character_set_for, query_of, response_identifier
from appliance.dicom.peers import AccessPolicy

PEERS = {"peers": [{"ae_title": "CT1", "host": "192.0.2.5", "rights": ["store"]}]}


def test_production_admits_only_configured_peers_from_their_host() -> None:
    document = config_from_document(PEERS, "test")
    policy = AccessPolicy(Settings(lambda: document), "archive")
    assert policy.admit("CT1", "192.0.2.5").rights == frozenset({"store"})
    assert not policy.admit("CT1", "192.0.2.6").admitted
    assert not policy.admit("VIEWER", "127.0.0.1").admitted
    assert "not a configured peer" in policy.admit("VIEWER", "192.0.2.5").reason


def test_development_also_admits_loopback_callers(tmp_path: Path) -> None:
    policy = AccessPolicy(Settings(lambda: development_config(tmp_path)), "archive")
    assert policy.admit("ANYONE", "127.0.0.1").admitted
    assert not policy.admit("ANYONE", "192.0.2.9").admitted


def answer(name: str, asked: str = "") -> str:
    request = Dataset()
    if asked:
        request.SpecificCharacterSet = asked
    request.PatientName = ""
    request.QueryRetrieveLevel = "STUDY"
    response = response_identifier({"PatientName": name}, request, "STUDY", "APPLIANCE")
    return str(response.SpecificCharacterSet)


def test_character_set_is_the_smallest_that_loses_nothing() -> None:
    assert answer("MARTIN^Paul") == ""
    assert answer("LEFÈVRE^Hélène") == "ISO_IR 100"
    assert answer("ŒUVRARD^Chloé") == "ISO_IR 192"
    assert answer("MARTIN^Paul", asked="ISO_IR 192") == "ISO_IR 192"
    assert character_set_for(Dataset(), Dataset()) == ""


def test_query_values_are_decoded_with_their_character_set() -> None:
    request = Dataset()
    request.SpecificCharacterSet = "ISO_IR 100"
    request.QueryRetrieveLevel = "study"
    request.PatientName = "LEFÈVRE*"
    request.ModalitiesInStudy = ["CT", "MR"]
    query = query_of(request)
    assert query.level == "STUDY"
    assert query.keys == {"PatientName": "LEFÈVRE*", "ModalitiesInStudy": "CT\\MR"}
