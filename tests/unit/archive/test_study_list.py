"""The console's study list on a real index (SQLite and PostgreSQL): names typed any way, IPP, INS of
qualified identities only, accession number, dates, modality, newest first, page after page."""

from __future__ import annotations

from datetime import date

import pytest
from datagen import PATIENTS, Patient, encoded, make_instance
from postgres import empty_index
from sqlalchemy import Engine
from worklist_data import add_national_identifier

from appliance.archive.attributes import read_attributes
from appliance.archive.index import Index
from appliance.archive.storage import WrittenFile
from appliance.archive.study_list import Position, StudyCriteria, console_search, search_statement
from appliance.patients.names import french_name

HEART = Patient("IPP0005", "CŒUR^Marie", "19700101", "F", "ISO_IR 192")
# (modality, patient, study date, study time) of each study; accession A<number>.
PLAN = [
    ("CT", PATIENTS[0], "20261101", "083000"),
    ("MR", PATIENTS[0], "20261115", "093000"),
    ("CT", PATIENTS[1], "20261101", "103000"),
    ("US", PATIENTS[2], "20250630", "113000"),
    ("MR", PATIENTS[3], "20261120", "123000"),
    ("CT", PATIENTS[3], "20261120", "133000"),
    ("MG", HEART, "20261120", "133000"),
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    engine = empty_index(request, tmp_path_factory, "study_list")
    index = Index(engine)
    for number, (modality, patient, day, time) in enumerate(PLAN):
        dataset = make_instance(modality, patient, accession_number=f"A{number}", study_date=day)
        dataset.StudyTime = time
        dataset.Rows = dataset.Columns = 8
        dataset.PixelData = b"\0" * (
            8 * 8 * dataset.SamplesPerPixel * (dataset.BitsAllocated // 8) * int(dataset.get("NumberOfFrames", 1))
        )
        index.add_instance(read_attributes(encoded(dataset)), WrittenFile(f"f{number}.dcm", 1, "0" * 64), "TEST")
    return engine


def accessions(engine: Engine, **criteria: object) -> list[str]:
    return [study.accession_number for study in console_search(engine, StudyCriteria(**criteria)).studies]  # type: ignore[arg-type]


def test_everything_newest_first(engine: Engine) -> None:
    assert accessions(engine) == ["A6", "A5", "A4", "A1", "A2", "A0", "A3"]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("coeur", ["A6"]),  # Œ typed as two letters
        ("CŒUR", ["A6"]),
        ("oeuvrard chloe", ["A1", "A0"]),  # family name then given name
        ("Chloé Œuvrard", ["A1", "A0"]),  # given name first
        ("lefevre", ["A3"]),  # accents ignored
        ("dupont^jean", ["A2"]),  # components as typed
        ("mart", ["A5", "A4"]),  # the beginning of the family name
        ("noël", []),  # a given name alone is not a family name
    ],
)
def test_names_as_people_type_them(engine: Engine, typed: str, expected: list[str]) -> None:
    assert accessions(engine, patient_name=typed) == expected


def test_ipp_accession_dates_and_modality(engine: Engine) -> None:
    assert accessions(engine, patient_id="IPP0001") == ["A1", "A0"]
    assert accessions(engine, patient_id="IPP000*", modality="MR") == ["A4", "A1"]
    assert accessions(engine, accession_number="A3") == ["A3"]
    assert accessions(engine, first_day=date(2026, 11, 1), last_day=date(2026, 11, 1)) == ["A2", "A0"]
    assert accessions(engine, first_day=date(2026, 11, 15)) == ["A6", "A5", "A4", "A1"]
    assert accessions(engine, last_day=date(2025, 12, 31)) == ["A3"]
    assert accessions(engine, modality="CT") == ["A5", "A2", "A0"]


def test_an_ins_finds_its_patient_only_when_the_identity_is_qualified(engine: Engine) -> None:
    first = console_search(engine, StudyCriteria(patient_id="IPP0002")).studies[0]
    assert first.accession_number == "A2"
    with engine.connect() as connection:
        pks = dict(connection.exec_driver_sql("SELECT patient_id, id FROM patient").all())
    add_national_identifier(engine, pks["IPP0002"], "275021234567890", status="VALI")
    add_national_identifier(engine, pks["IPP0003"], "288091234567891", status="PROV")
    assert accessions(engine, national_identifier="275021234567890") == ["A2"]
    assert accessions(engine, national_identifier="288091234567891") == []


def test_pages_follow_each_other_without_overlap(engine: Engine) -> None:
    seen: list[str] = []
    after = None
    for _ in range(5):
        page = console_search(engine, StudyCriteria(), after, limit=3)
        seen += [study.accession_number for study in page.studies]
        after = page.next_position
        if after is None:
            break
        assert Position.parse(after.token) == after
    assert seen == ["A6", "A5", "A4", "A1", "A2", "A0", "A3"]


def test_a_listed_study_says_what_the_table_shows(engine: Engine) -> None:
    (study,) = console_search(engine, StudyCriteria(accession_number="A0")).studies
    assert (study.patient_display_name, study.patient_id, study.patient_birth_date) == (
        "ŒUVRARD Chloé",
        "IPP0001",
        date(1961, 4, 12),
    )
    assert (study.study_date, study.study_time, study.modalities) == (date(2026, 11, 1), "08:30", ("CT",))
    assert (study.number_of_series, study.number_of_instances, study.study_description) == (1, 1, "CT thorax")


def test_positions_made_by_hand_are_refused() -> None:
    assert Position.parse("20261101_083000_12") == Position("20261101", "083000", 12)
    assert Position.parse("_._3") == Position("", ".", 3)
    for token in ("", "x", "2026_08_", "20261101_0830'00_1", "1_2_3_4"):
        assert Position.parse(token) is None


def test_french_name_shows_the_family_name_in_capitals() -> None:
    assert french_name("Œuvrard^Chloé^Marie^^Mme") == "ŒUVRARD Chloé Marie"
    assert french_name("DUPONT") == "DUPONT"
    assert french_name("") == ""


def plan_of(engine: Engine, criteria: StudyCriteria, after: Position | None = None) -> str:
    compiled = search_statement(criteria, after).limit(51).compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as connection:
        return " ".join(str(row) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))


@pytest.mark.parametrize(
    "criteria",
    [
        StudyCriteria(),
        StudyCriteria(first_day=date(2026, 11, 20), last_day=date(2026, 11, 20)),
        StudyCriteria(modality="MG"),
    ],
)
def test_pages_are_read_along_the_order_index(engine: Engine, criteria: StudyCriteria) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("plan text checked on SQLite")
    for after in (None, Position("20261120", "133000", 6)):
        plan = plan_of(engine, criteria, after)
        assert "ix_study_date_time_id" in plan and "SCAN patient" not in plan and "TEMP B-TREE" not in plan


def test_patient_keys_use_their_indexes(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("plan text checked on SQLite")
    assert "ix_patient_name_key" in plan_of(engine, StudyCriteria(patient_name="coeur marie"))
    assert "ix_patient_patient_id" in plan_of(engine, StudyCriteria(patient_id="IPP0001"))
    assert "ix_patient_identifier_identifier" in plan_of(engine, StudyCriteria(national_identifier="275021234567890"))
    assert "ix_study_accession_number" in plan_of(engine, StudyCriteria(accession_number="A1"))
    for criteria in (StudyCriteria(patient_name="coeur"), StudyCriteria(national_identifier="275021234567890")):
        assert "SCAN patient" not in plan_of(engine, criteria) and "SCAN study" not in plan_of(engine, criteria)
