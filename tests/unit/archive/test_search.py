"""C-FIND matching on a real SQLite index (PS3.4 C.2.2.2)."""

from __future__ import annotations

import pytest
from datagen import PATIENTS, encoded, make_instance
from sqlalchemy import Engine

from appliance.archive.attributes import read_attributes
from appliance.archive.index import Index
from appliance.archive.retrieve import plan
from appliance.archive.search import Query, QueryError, find
from appliance.archive.storage import WrittenFile
from appliance.db import create_index_engine, upgrade_schema
from appliance.patients.names import MAXIMUM_SPELLINGS, fold, person_name_key, spellings


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """Six studies: four patients, two dates, CT/MR/US; on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('index') / 'index.sqlite'}"
    else:
        url = request.getfixturevalue("postgresql_url")
    engine = create_index_engine(url)
    upgrade_schema(engine)
    index = Index(engine)
    plan = [
        ("CT", 0, "20261101"),
        ("MR", 0, "20261115"),
        ("CT", 1, "20261101"),
        ("US", 2, "20250630"),
        ("MR", 3, "20261120"),
        ("CT", 3, "20261120"),
    ]
    for number, (modality, patient, date) in enumerate(plan):
        dataset = make_instance(modality, PATIENTS[patient], accession_number=f"A{number}", study_date=date)
        dataset.StudyTime = f"{8 + number:02d}3000"
        dataset.Rows = dataset.Columns = 8
        dataset.PixelData = b"\0" * (
            8 * 8 * dataset.SamplesPerPixel * (dataset.BitsAllocated // 8) * int(dataset.get("NumberOfFrames", 1))
        )
        attributes = read_attributes(encoded(dataset))
        index.add_instance(attributes, WrittenFile(f"f{number}.dcm", 1, "0" * 64), "TEST")
    return engine


def studies(engine: Engine, **keys: str) -> list[str]:
    rows = find(engine, Query("STUDY", {"AccessionNumber": "", **keys}), limit=100)
    return sorted(row["AccessionNumber"] for row in rows)


def test_folding_of_french_names_keeps_ligatures_as_one_character() -> None:
    assert fold("Œuvrard^Chloé") == fold("œuvrard^chloe") == "ŒUVRARD^CHLOE"
    assert fold("Lætitia Straße") == "LÆTITIA STRAẞE"
    assert person_name_key("Lefèvre^Hélène^^^") == "LEFEVRE^HELENE"
    assert person_name_key("Müller=ミュラー") == "MULLER"


def test_spellings_of_a_query_cover_ligatures_and_letters() -> None:
    assert spellings("OEUVRARD") == ["OEUVRARD", "ŒUVRARD"]
    assert spellings("ŒUV*") == ["ŒUV*", "OEUV*"]
    assert spellings("O*") == ["O*", "Œ*"]  # the letter before `*` may begin a ligature
    assert spellings("B?UF*") == ["B?UF*"]  # `?` is one character: never two letters of a pair
    assert len(spellings("OE" * 9)) == MAXIMUM_SPELLINGS


def test_universal_matching_returns_everything(engine: Engine) -> None:
    assert studies(engine) == ["A0", "A1", "A2", "A3", "A4", "A5"]


def test_person_name_ignores_case_and_accents(engine: Engine) -> None:
    assert studies(engine, PatientName="œuvrard*") == ["A0", "A1"]
    assert studies(engine, PatientName="OEUVRARD^CHLOE") == ["A0", "A1"]
    assert studies(engine, PatientName="lef?vre*") == ["A3"]
    assert studies(engine, PatientName="DUPONT") == []  # single value matching is the whole name


def test_question_mark_is_one_character_of_the_stored_name(engine: Engine) -> None:
    assert studies(engine, PatientName="?UVRARD*") == ["A0", "A1"]  # ? is Œ
    assert studies(engine, PatientName="??UVRARD*") == []  # not O and E
    assert studies(engine, PatientName="?UVRARD^CHLO?") == ["A0", "A1"]


def test_spelled_out_ligatures_still_find_the_ligature(engine: Engine) -> None:
    assert studies(engine, PatientName="OEUVRARD^Chloe") == ["A0", "A1"]
    assert studies(engine, PatientName="oeuv*") == ["A0", "A1"]
    assert studies(engine, PatientName="O*") == ["A0", "A1"]
    assert studies(engine, PatientName="Œ*") == ["A0", "A1"]
    assert studies(engine, PatientName="OEUVRARD^CHLŒ") == ["A0", "A1"]  # every pair has both spellings


def test_other_strings_are_case_sensitive(engine: Engine) -> None:
    assert studies(engine, PatientID="IPP0001") == ["A0", "A1"]
    assert studies(engine, PatientID="ipp0001") == []
    assert studies(engine, PatientID="IPP000*") == ["A0", "A1", "A2", "A3", "A4", "A5"]


def test_wildcards_do_not_leak_sql_patterns(engine: Engine) -> None:
    assert studies(engine, AccessionNumber="A%") == []
    assert studies(engine, AccessionNumber="A_") == []
    assert studies(engine, AccessionNumber="A?") == ["A0", "A1", "A2", "A3", "A4", "A5"]


def test_date_ranges(engine: Engine) -> None:
    assert studies(engine, StudyDate="20261101") == ["A0", "A2"]
    assert studies(engine, StudyDate="20261110-20261120") == ["A1", "A4", "A5"]
    assert studies(engine, StudyDate="-20251231") == ["A3"]
    assert studies(engine, StudyDate="20261116-") == ["A4", "A5"]


def test_time_ranges_compare_partial_times(engine: Engine) -> None:
    assert studies(engine, StudyTime="0800-0930") == ["A0", "A1"]
    assert studies(engine, StudyTime="12-") == ["A4", "A5"]
    assert studies(engine, StudyTime="10") == ["A2"]


def test_uid_lists(engine: Engine) -> None:
    rows = find(engine, Query("STUDY", {"StudyInstanceUID": ""}), 100)
    uids = [row["StudyInstanceUID"] for row in rows[:2]]
    assert len(find(engine, Query("STUDY", {"StudyInstanceUID": "\\".join(uids)}), 100)) == 2


def test_modalities_in_study(engine: Engine) -> None:
    assert studies(engine, ModalitiesInStudy="US") == ["A3"]
    assert studies(engine, ModalitiesInStudy="US\\MR") == ["A1", "A3", "A4"]


def test_patient_level_counts_related_studies(engine: Engine) -> None:
    rows = find(engine, Query("PATIENT", {"PatientID": "IPP0004", "NumberOfPatientRelatedStudies": ""}), 10)
    assert [(row["PatientID"], row["NumberOfPatientRelatedStudies"]) for row in rows] == [("IPP0004", 2)]


def test_levels_and_limits(engine: Engine) -> None:
    assert len(find(engine, Query("IMAGE", {"Modality": "CT"}), 100)) == 3
    assert len(find(engine, Query("STUDY", {}), 2)) == 3  # limit + 1 tells the caller there were more
    with pytest.raises(QueryError, match="unknown level"):
        find(engine, Query("FRAME", {}), 10)


def test_retrieve_needs_the_unique_key_of_its_level(engine: Engine) -> None:
    with pytest.raises(QueryError, match="StudyInstanceUID: needed"):
        plan(engine, Query("STUDY", {"PatientID": "IPP0001"}))
    items = plan(engine, Query("PATIENT", {"PatientID": "IPP0004"})).items
    assert len(items) == 2


def test_study_lookup_by_patient_id_uses_an_index(engine: Engine) -> None:
    from appliance.archive.search import find_statement

    if engine.dialect.name != "sqlite":
        pytest.skip("plan text checked on SQLite")
    statement = find_statement(Query("STUDY", {"PatientID": "IPP0001", "StudyInstanceUID": ""}))
    compiled = statement.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as connection:
        plan = " ".join(str(row) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
    assert "USING INDEX" in plan and "SCAN patient" not in plan


@pytest.mark.parametrize("name", ["OEUVRARD^CHLOE", "OEUV*", "B?UF*"])
def test_name_matching_uses_the_index_of_the_folded_key(engine: Engine, name: str) -> None:
    from appliance.archive.search import find_statement

    if engine.dialect.name != "sqlite":
        pytest.skip("plan text checked on SQLite")
    statement = find_statement(Query("STUDY", {"PatientName": name, "StudyInstanceUID": ""}))
    compiled = statement.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as connection:
        plan = " ".join(str(row) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
    assert "ix_patient_name_key" in plan and "SCAN patient" not in plan


def test_a_plan_is_the_same_by_the_statement_made_once_and_by_one_built_for_the_query(engine: Engine) -> None:
    """Single values (nearly every retrieve) run a statement made once; lists of UIDs and wildcards
    one built for the query: both give the same objects in the same order."""
    from appliance.archive.retrieve import single_values

    studies = [row["StudyInstanceUID"] for row in find(engine, Query("STUDY", {"PatientID": "IPP0004"}), 10)]
    assert len(studies) == 2
    listed = Query("STUDY", {"StudyInstanceUID": "\\".join(studies)})
    assert single_values(listed, 1) is None
    singles = [Query("STUDY", {"StudyInstanceUID": uid}) for uid in sorted(studies)]
    assert all(single_values(query, 1) == {"StudyInstanceUID": query.keys["StudyInstanceUID"]} for query in singles)
    one_by_one = {item for query in singles for item in plan(engine, query).items}
    assert set(plan(engine, listed).items) == one_by_one and len(one_by_one) == 2

    wildcard = Query("PATIENT", {"PatientID": "IPP000?"})
    assert single_values(wildcard, 0) is None
    by_patient = [plan(engine, Query("PATIENT", {"PatientID": f"IPP000{number}"})).items for number in range(1, 5)]
    assert sorted(plan(engine, wildcard).items) == sorted(item for items in by_patient for item in items)


def test_a_studys_current_patient_and_first_stored_header_come_in_one_query(engine: Engine) -> None:
    """What the identity check of a retrieve compares (a study unknown to the index gives neither)."""
    from appliance.archive.retrieve import current_identity_and_sample_header

    study_uid = find(engine, Query("STUDY", {"PatientID": "IPP0001"}), 10)[0]["StudyInstanceUID"]
    with engine.connect() as connection:
        current, header = current_identity_and_sample_header(connection, study_uid)
        assert current is not None and current["PatientID"] == "IPP0001"
        assert header is not None and b"IPP0001" in header
        assert current_identity_and_sample_header(connection, "1.2.3.4.5.6.7") == (None, None)
