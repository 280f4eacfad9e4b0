"""Worklist answers written straight from the index rows (issue 14) are byte for byte what the
Dataset-built answers (`profiles.answers`, what the preview prints) encode to with pydicom, for every
profile (character sets, lengths, name formats, return keys), query shape and syntax; and what is
kept never outlives a change of the orders or of the patients."""

from __future__ import annotations

from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom.dsutils import encode
from sqlalchemy import Engine, update
from worklist_data import add_national_identifier, add_patient, add_ris_patient, new_order, schedule

from appliance import practice_time
from appliance.config import Config
from appliance.config.loader import config_from_document
from appliance.db.schema import patient
from appliance.dicom.encoding import PreEncoded, encode_identifier
from appliance.dicom.worklist_answers import AnswerCache
from appliance.worklist.orders import OrderControl
from appliance.worklist.profiles import answers, typical_query

PROFILES = [
    {"ae_title": "CT_SALLE1", "filter_on_calling_ae": False},
    {"ae_title": "VOLUSON", "character_set": "ISO_IR 100", "patient_id_max_length": 16,
     "patient_name_max_length": 12, "filter_on_calling_ae": False},
    {"ae_title": "OLD_CR", "character_set": "ASCII", "return_keys": ["PatientName"], "filter_on_calling_ae": False},
    {"ae_title": "LATIN", "character_set": "ISO_IR 100", "filter_on_calling_ae": False},
    {"ae_title": "MAMMO", "patient_family_name": "used", "patient_name_case": "upper",
     "patient_name_components": ["family", "given", "prefix"], "filter_on_calling_ae": False},
    {"ae_title": "OWNROOM"},
]  # fmt: skip


def worklist_config() -> Config:
    return config_from_document({"worklist": {"profiles": PROFILES}}, "test")


@pytest.fixture()
def orders(engine: Engine) -> Config:
    """Steps for today and tomorrow: French names, an INS, a RIS identity, long names and IDs."""
    config = worklist_config()
    chloe = add_patient(engine, "IPP00000000000000042", "ŒUVRARD^Chloé^Marie^Mme")
    add_national_identifier(engine, chloe, "261017510612345")
    helene = add_patient(engine, "IPP2", "LEFÈVRE-DESCHÊNES^Hélène-Françoise")
    jeanne = add_ris_patient(engine, "IPP3", birth=("DARK", "Jeanne"), used=("MARTIN", "Jeannette"))
    laura = add_patient(engine, "IPP4", "VANILLA^Laura^^^Mme")
    stations = [("CT", "OWNROOM"), ("US", "VOLUSON"), ("CR", "OLD_CR"), ("MG", "MAMMO")]
    for number, patient_pk in enumerate([chloe, helene, jeanne, laura, chloe, helene, jeanne, laura]):
        modality, station = stations[number % 4]
        order = new_order(number, modality, station, reason="Contrôle à 3 mois", performing_physician_name="NOËL^Zoé")
        schedule(engine, config, order, patient_pk)
    return config


def requests() -> list[Dataset]:
    """The shapes modalities send: the typical query, a findscu-like one, a wildcard on the name,
    one asking for whole sequence items, one asking for the procedure code's meaning only."""
    findscu_like = Dataset()
    findscu_like.PatientName = ""
    findscu_like.PatientID = ""
    findscu_like.AccessionNumber = ""
    step = Dataset()
    step.Modality = ""
    step.ScheduledStationAETitle = ""
    step.ScheduledProcedureStepStartDate = ""
    findscu_like.ScheduledProcedureStepSequence = Sequence([step])
    wildcard = typical_query()
    wildcard.PatientName = "ŒUV*"
    whole = Dataset()
    whole.SpecificCharacterSet = "ISO_IR 100"
    whole.ScheduledProcedureStepSequence = Sequence()
    whole.OtherPatientIDsSequence = Sequence()
    whole.PatientName = ""
    code_meaning = typical_query("MG")
    code_item = Dataset()
    code_item.CodeMeaning = ""
    code_meaning.RequestedProcedureCodeSequence = Sequence([code_item])
    code_meaning.ReasonForTheRequestedProcedure = ""
    code_meaning.RequestedProcedurePriority = ""
    return [typical_query(), typical_query("CT"), findscu_like, wildcard, whole, code_meaning]


def built(engine: Engine, config: Config, request: Dataset, calling: str, implicit: bool) -> list[bytes]:
    """Today's way: Datasets built per answer, written by pydicom."""
    return [
        encode(one, implicit, True) for one in answers(engine, config.worklist, request, calling, practice_time.today())
    ]


@pytest.mark.parametrize("implicit", [True, False], ids=["implicit", "explicit"])
def test_written_answers_are_the_dataset_built_ones(engine: Engine, orders: Config, implicit: bool) -> None:
    cache = AnswerCache()
    compared = 0
    for profile in PROFILES:
        calling = str(profile["ae_title"])
        for request in requests():
            written = cache.answers(engine, orders.worklist, request, calling, practice_time.today(), implicit)
            expected = built(engine, orders, request, calling, implicit)
            assert [one.encoded for one in written] == expected, (calling, request)
            compared += len(expected)
    assert compared > 100


def test_the_audit_sees_whom_each_answer_is_about(engine: Engine, orders: Config) -> None:
    for calling in ("VOLUSON", "OLD_CR", "CT_SALLE1"):
        written = AnswerCache().answers(engine, orders.worklist, typical_query(), calling, practice_time.today(), True)
        datasets = answers(engine, orders.worklist, typical_query(), calling, practice_time.today())
        assert [(one.patient_id, one.issuer_of_patient_id, one.patient_name) for one in written] == [
            (one.get("PatientID", ""), one.get("IssuerOfPatientID", ""), str(one.get("PatientName", "")))
            for one in datasets
        ]


def test_a_new_or_changed_order_or_patient_changes_the_answer(engine: Engine, orders: Config) -> None:
    cache = AnswerCache()

    def written() -> list[bytes]:
        found = cache.answers(engine, orders.worklist, typical_query(), "CT_SALLE1", practice_time.today(), False)
        return [one.encoded for one in found]

    before = written()
    kept = len(cache.entries)
    assert written() == before and len(cache.entries) == kept  # asked again: answered from what was kept
    newcomer = add_patient(engine, "IPP9", "NOUVEAU^Éloïse")
    schedule(engine, orders, new_order(20, "CT", "OWNROOM"), newcomer)
    assert len(written()) == len(before) + 1
    assert written() == built(engine, orders, typical_query(), "CT_SALLE1", False)
    changed = new_order(20, "CT", "OWNROOM", control=OrderControl.CHANGE, procedure_description="Scanner cérébral")
    schedule(engine, orders, changed, newcomer)
    assert written() == built(engine, orders, typical_query(), "CT_SALLE1", False)
    assert any(b"Scanner c\xc3\xa9r\xc3\xa9bral" in one for one in written())
    with engine.begin() as connection:
        connection.execute(update(patient).where(patient.c.id == newcomer).values(patient_name="NOUVELLE^Éloïse"))
    assert any(b"NOUVELLE" in one for one in written())
    assert written() == built(engine, orders, typical_query(), "CT_SALLE1", False)


def test_a_pre_encoded_identifier_is_passed_on_only_in_its_own_syntax() -> None:
    identifier: Any = PreEncoded(b"\x10\x00\x10\x00\x04\x00\x00\x00AB^C", implicit=True)
    assert encode_identifier(identifier, True, True) == b"\x10\x00\x10\x00\x04\x00\x00\x00AB^C"
    assert encode_identifier(identifier, False, True) == b""  # pynetdicom then answers Unable to Process
    assert encode(identifier, True, True) == b""  # pydicom's writer sends nothing rather than something wrong


def test_the_oldest_answers_are_dropped_beyond_the_maximum(engine: Engine, orders: Config) -> None:
    cache = AnswerCache(maximum=3)
    found = cache.answers(engine, orders.worklist, typical_query(), "CT_SALLE1", practice_time.today(), True)
    assert len(found) > 3 and len(cache.entries) == 3
