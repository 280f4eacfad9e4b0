"""Known modality models: each is a valid profile, recognised again once written, and its preview is
what the profile code answers for the sample order (CŒUR-DE-LION^Éléonore as each modality sees it)."""

from __future__ import annotations

from datetime import date

import pytest

from appliance.config.layers import Layer
from appliance.config.loader import configuration_problems
from appliance.worklist.models import MODELS, document_of, model, model_of, preview, profile_from, sample_answer

TODAY = date(2026, 3, 2)


def shown(key: str) -> dict[str, str]:
    known = model(key)
    assert known is not None
    return dict(preview(known.profile("ECHO_1"), TODAY))


@pytest.mark.parametrize("known", MODELS, ids=lambda known: known.key)
def test_each_model_is_a_valid_profile_and_is_recognised_again(known) -> None:  # type: ignore[no-untyped-def]
    document = {"worklist": {"profiles": [known.document("ECHO_1")]}}
    assert configuration_problems([Layer("test", document)]) == []
    assert model_of(profile_from(known.document("ECHO_1"))) == known


def test_a_profile_set_by_hand_is_no_model() -> None:
    assert model_of(profile_from({"ae_title": "X", "days_after": 3})) is None


def test_utf8_modalities_receive_the_name_as_recorded() -> None:
    assert shown("generic")["PatientName"] == "CŒUR-DE-LION^Éléonore^Marie-Hélène^Mme"
    assert shown("siemens-ct")["PatientName"] == "CŒUR-DE-LION^Éléonore^Marie-Hélène"  # no civility
    assert shown("generic")["SpecificCharacterSet"] == "ISO_IR 192"


def test_latin1_keeps_accents_spells_out_the_ligature_and_cuts_the_id() -> None:
    voluson = shown("ge-voluson")
    assert voluson["SpecificCharacterSet"] == "ISO_IR 100"
    assert voluson["PatientName"] == "COEUR-DE-LION^Éléonore^Marie-Hélène^Mme"
    assert voluson["PatientID"] == "IPP-2026-0001234"  # 16 characters


def test_the_old_mammography_unit_gets_ascii_capitals_within_16_characters() -> None:
    mammography = shown("old-mammography")
    assert mammography["SpecificCharacterSet"] == ""
    assert mammography["PatientName"] == "COEUR-DE-LION"
    assert mammography["RequestedProcedureDescription"] == "Echographie abdominale complete"


def test_the_sample_answer_is_scheduled_today_for_the_modality() -> None:
    known = model("generic")
    assert known is not None
    step = sample_answer(known.profile("ECHO_1"), TODAY).ScheduledProcedureStepSequence[0]
    assert (step.ScheduledStationAETitle, step.ScheduledProcedureStepStartDate) == ("ECHO_1", "20260302")


def test_a_profile_is_written_back_with_only_what_differs_from_the_defaults() -> None:
    profile = profile_from({"ae_title": "X", "days_after": 3, "return_keys": ["PatientName"]})
    assert document_of(profile) == {"ae_title": "X", "return_keys": ["PatientName"], "days_after": 3}
    assert profile_from(document_of(profile)) == profile
