"""What an HL7 value must be to become DICOM (PS3.5 6.2): each check passes good values and names
what is wrong with bad ones, in French and English, without quoting the value."""

from __future__ import annotations

import pytest

from appliance.hl7.dicom_values import (
    ae_title_problem,
    code_string_problem,
    person_name_problem,
    text_problem,
    timestamp_problem,
    uid_problem,
)


@pytest.mark.parametrize("value", ["1.2.250.999.1.20250601.1", "2.25.0", "1." + "1" * 62])
def test_good_uids(value: str) -> None:
    assert uid_problem(value) == ""


@pytest.mark.parametrize(
    "value", ["1.2.abc'x", "1.2..3", "1.02.3", "9.1", "1", "1.2.", ".1.2", "1." + "1" * 63, "1.2 .3"]
)
def test_bad_uids(value: str) -> None:
    assert " / " in uid_problem(value)  # French / English
    assert value not in uid_problem(value)


@pytest.mark.parametrize("value", ["19800115", "20250601093000", "20250601093000.1234+0100", "202506010930-0500"])
def test_good_timestamps(value: str) -> None:
    assert timestamp_problem(value) == ""


@pytest.mark.parametrize(
    "value", ["notadate", "1980", "198001", "19800230", "20250601250000", "2025-06-01", "19800115+2500"]
)
def test_bad_timestamps(value: str) -> None:
    assert timestamp_problem(value)


def test_code_strings_and_ae_titles() -> None:
    assert code_string_problem("CT") == "" and code_string_problem("MR_3 T") == ""
    assert code_string_problem("ct") and code_string_problem("A" * 17) and code_string_problem("C-T")
    assert ae_title_problem("CT_SALLE2") == "" and ae_title_problem("lower case ok") == ""
    assert ae_title_problem("A" * 17) and ae_title_problem("A\\B") and ae_title_problem("   ")
    assert ae_title_problem("SALLÉ") and ae_title_problem("A\tB")


def test_texts_and_names() -> None:
    short = text_problem(16)
    assert short("ACC0001") == "" and short("A" * 17) and short("A\\B") and short("A\rB")
    assert person_name_problem(["ŒUVRARD", "Chloé"]) == ""
    assert person_name_problem(["A" * 32, "B" * 31]) == ""  # 64 with its ^
    assert person_name_problem(["A" * 32, "B" * 32])
    assert person_name_problem(["DU^PONT", "X"]) and person_name_problem(["A=B"]) and person_name_problem(["A\nB"])
