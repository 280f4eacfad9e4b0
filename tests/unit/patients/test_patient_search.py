"""Finding patients for PDQ on a real index: names matched on the folded key, as C-FIND matches them."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from worklist_data import add_national_identifier, add_patient

from appliance.patients.search import Criteria, find_patients

NAMES = ["ŒUVRARD^Chloé", "BŒUF^Jean", "DUPONT^Jean-François", "DUPONT^Jeanne", "KRAUß^Lætitia"]


@pytest.fixture()
def patients(engine: Engine) -> Engine:
    for number, name in enumerate(NAMES, start=1):
        add_patient(engine, f"IPP{number}", name)
    return engine


def names(engine: Engine, **criteria: str) -> list[str]:
    return sorted(str(found.values["patient_name"]) for found in find_patients(engine, Criteria(**criteria), 10))


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ({"family": "OEUVRARD"}, ["ŒUVRARD^Chloé"]),  # spelled out, the ligature is found
        ({"family": "œuv*"}, ["ŒUVRARD^Chloé"]),
        ({"family": "B?UF"}, ["BŒUF^Jean"]),  # ? is one character: Œ
        ({"family": "B??UF"}, []),
        ({"family": "KRAUSS", "given": "laetitia"}, ["KRAUß^Lætitia"]),
        ({"family": "DUPONT"}, ["DUPONT^Jean-François", "DUPONT^Jeanne"]),
        ({"family": "DUPONT", "given": "JEAN"}, []),  # the whole given name, unless it ends with *
        ({"family": "DUPONT", "given": "JEAN*"}, ["DUPONT^Jean-François", "DUPONT^Jeanne"]),
        ({"given": "chloe"}, ["ŒUVRARD^Chloé"]),  # a given name alone: any family name
        ({"family": "%"}, []),  # SQL patterns are not wildcards
        ({"family": "DUP_NT"}, []),
    ],
)
def test_names_match_like_c_find(patients: Engine, criteria: dict[str, str], expected: list[str]) -> None:
    assert names(patients, **criteria) == expected


def test_an_ins_finds_its_patient_only_for_a_qualified_identity(engine: Engine) -> None:
    qualified, provisional = add_patient(engine, "IPP1", "DUPONT^Jean"), add_patient(engine, "IPP2", "MARTIN^Noël")
    add_national_identifier(engine, qualified, "180017512345678")
    add_national_identifier(engine, provisional, "280017512345678", status="PROV")
    found = find_patients(engine, Criteria(national_identifier="180017512345678"), 10)
    assert [item.values["patient_id"] for item in found] == ["IPP1"]
    assert find_patients(engine, Criteria(national_identifier="280017512345678"), 10) == []
