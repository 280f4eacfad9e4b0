"""Patient's Name matching is the same everywhere (PS3.4 C.2.2.2.4): C-FIND on the archive, the
worklist and PDQ all match the folded key, `?` is one character of the stored name (Œ included), and
spelled-out letters find ligatures; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from postgres import empty_index
from sqlalchemy import Engine
from worklist_data import add_patient, new_order, schedule

from appliance import practice_time
from appliance.archive.search import Query, find
from appliance.config.loader import config_from_document
from appliance.patients.search import Criteria, find_patients
from appliance.worklist.search import WorklistQuery, find_items

NAMES = ["ŒUVRARD^Chloé", "BŒUF^Jean", "BOEUF^Marc", "LEFÈVRE^Hélène", "KRAUß^Lætitia"]
CONFIG = config_from_document({"worklist": {"default_profile": {"filter_on_calling_ae": False}}}, "test")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def index(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One patient per name, each with an order scheduled today."""
    engine = empty_index(request, tmp_path_factory, "name_matching")
    for number, name in enumerate(NAMES, start=1):
        schedule(engine, CONFIG, new_order(number, "CT", "CT1"), add_patient(engine, f"IPP{number}", name))
    yield engine
    engine.dispose()


def archive_names(engine: Engine, pattern: str) -> list[str]:
    return sorted(row["PatientName"] for row in find(engine, Query("PATIENT", {"PatientName": pattern}), 10))


def worklist_names(engine: Engine, pattern: str) -> list[str]:
    query = WorklistQuery(patient_name=pattern)
    return sorted(
        item["patient_name"]
        for item in find_items(engine, query, CONFIG.worklist.default_profile, "CT1", practice_time.today())
    )


def pdq_names(engine: Engine, pattern: str) -> list[str]:
    return sorted(found.values["patient_name"] for found in find_patients(engine, Criteria(family=pattern), 10))


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("B?UF*", ["BŒUF^Jean"]),  # ? is Œ
        ("B??UF*", ["BOEUF^Marc"]),  # two characters: O and E, never Œ
        ("BOEUF*", ["BOEUF^Marc", "BŒUF^Jean"]),  # both spellings, whichever was recorded
        ("bœuf*", ["BOEUF^Marc", "BŒUF^Jean"]),
        ("OEUV*", ["ŒUVRARD^Chloé"]),
        ("O*", ["ŒUVRARD^Chloé"]),
        ("lef?vre*", ["LEFÈVRE^Hélène"]),
        ("KRAUSS*", ["KRAUß^Lætitia"]),
        ("KRAU?^L?TITIA*", ["KRAUß^Lætitia"]),  # ß and Æ are one character each
    ],
)
def test_the_archive_the_worklist_and_pdq_match_names_alike(index: Engine, pattern: str, expected: list[str]) -> None:
    assert archive_names(index, pattern) == expected
    assert worklist_names(index, pattern) == expected
    assert pdq_names(index, pattern) == expected


def test_single_value_matching_is_the_whole_name(index: Engine) -> None:
    assert worklist_names(index, "OEUVRARD^CHLOE") == ["ŒUVRARD^Chloé"]
    assert worklist_names(index, "OEUVRARD") == []
    assert archive_names(index, "oeuvrard^chloé") == ["ŒUVRARD^Chloé"]
