"""The worklist daemon queried by DCMTK's `findscu -W`, once per modality profile (W1, W2)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from servers import Daemon, archive_config, associate, cli, run, write_config
from worklist_data import add_national_identifier, add_patient, add_ris_patient, new_order, schedule

from appliance import practice_time
from appliance.config import load_config
from appliance.db import create_index_engine, upgrade_schema
from appliance.dicom.worklist_scp import MODALITY_WORKLIST_FIND
from appliance.worklist.profiles import typical_query

PROFILES = [
    {"ae_title": "CT_SALLE1"},
    {"ae_title": "VOLUSON", "character_set": "ISO_IR 100", "patient_id_max_length": 16, "patient_name_max_length": 12},
    {"ae_title": "OLD_CR", "character_set": "ASCII", "return_keys": ["PatientName"]},
    {"ae_title": "ALLROOMS", "filter_on_calling_ae": False},
    {"ae_title": "MAMMO", "patient_family_name": "used", "patient_name_case": "upper",
     "patient_name_components": ["family", "given", "prefix"]},
]  # fmt: skip


@pytest.fixture()
def worklist(tmp_path: Path) -> Iterator[Daemon]:
    config: dict[str, Any] = archive_config(tmp_path / "data", 1)
    config["peers"] += [
        {"ae_title": title, "host": "127.0.0.1", "rights": ["store", "worklist"]}
        for title in ("CT_SALLE1", "VOLUSON", "OLD_CR", "ALLROOMS", "MAMMO")
    ]
    config["worklist"] = {"bind_address": "127.0.0.1", "port": 0, "profiles": PROFILES}
    config_path = write_config(tmp_path / "a.yaml", config)
    loaded = load_config(config_path)
    engine = create_index_engine(loaded.database_url)
    upgrade_schema(engine, loaded.storage.index_directory)
    chloe = add_patient(engine, "IPP00000000000000042", "ŒUVRARD^Chloé^Marie^Mme")
    add_national_identifier(engine, chloe, "261017510612345")
    helene = add_patient(engine, "IPP2", "LEFÈVRE^Hélène")
    schedule(engine, loaded, new_order(1, "CT", "CT_SALLE1"), chloe)
    schedule(engine, loaded, new_order(2, "US", "VOLUSON"), chloe)
    schedule(engine, loaded, new_order(3, "CR", "OLD_CR"), helene)
    schedule(engine, loaded, new_order(4, "CT", "CT_SALLE1", day=practice_time.today() + timedelta(days=5)), helene)
    jeanne = add_ris_patient(engine, "IPP3", birth=("DARK", "Jeanne"), used=("MARTIN", "Jeannette"))
    laura = add_patient(engine, "IPP4", "VANILLA^Laura^^^Mme")  # civility copied into the suffix
    schedule(engine, loaded, new_order(5, "MG", "MAMMO"), jeanne)
    schedule(engine, loaded, new_order(6, "MG", "MAMMO"), laura)
    engine.dispose()
    daemon = Daemon("appliance.daemons.worklist", config_path, tmp_path / "worklist.log").start()
    yield daemon
    daemon.stop()


def query(worklist: Daemon, calling: str, directory: Path, *keys: str) -> list[Any]:
    directory.mkdir(parents=True, exist_ok=True)
    arguments = ["findscu", "-W", "-aet", calling, "-aec", "APPLIANCE_MWL", "-X", "-od", str(directory)]
    step = "ScheduledProcedureStepSequence[0]"
    defaults = ["PatientName", "PatientID", "AccessionNumber", "StudyInstanceUID", "RequestedProcedureID",
                f"{step}.Modality", f"{step}.ScheduledStationAETitle", f"{step}.ScheduledProcedureStepStartDate",
                f"{step}.ScheduledProcedureStepID"]  # fmt: skip
    for key in [*defaults, *keys]:
        arguments += ["-k", key]
    run([*arguments, "127.0.0.1", str(worklist.port)])
    return [dcmread(path) for path in sorted(directory.glob("rsp*.dcm"))]


def test_utf8_profile_without_station_sees_its_own_items_of_today(worklist: Daemon, tmp_path: Path) -> None:
    (item,) = query(worklist, "CT_SALLE1", tmp_path / "ct")
    assert item.SpecificCharacterSet == "ISO_IR 192"
    assert str(item.PatientName) == "ŒUVRARD^Chloé^Marie^Mme"
    assert item.AccessionNumber == "ACC00001"
    step = item.ScheduledProcedureStepSequence[0]
    assert (step.Modality, step.ScheduledStationAETitle, step.ScheduledProcedureStepStartDate) == (
        "CT",
        "CT_SALLE1",
        practice_time.today().strftime("%Y%m%d"),
    )
    assert item.StudyInstanceUID


def test_latin1_profile_with_short_ids_and_names(worklist: Daemon, tmp_path: Path) -> None:
    (item,) = query(worklist, "VOLUSON", tmp_path / "us")
    assert item.SpecificCharacterSet == "ISO_IR 100"
    assert str(item.PatientName) == "OEUVRARD"  # Œ folded to OE; 12 characters at most, whole components
    assert item.PatientID == "IPP0000000000000"


def test_ascii_profile_folds_accents_and_returns_only_its_keys(worklist: Daemon, tmp_path: Path) -> None:
    (item,) = query(worklist, "OLD_CR", tmp_path / "cr", "PatientBirthDate", "InstitutionName")
    assert "SpecificCharacterSet" not in item or not item.SpecificCharacterSet
    assert str(item.PatientName) == "LEFEVRE^Helene"
    assert "PatientBirthDate" in item  # type 2 key: always answered when asked
    assert "InstitutionName" not in item  # not in the profile's return keys


def test_explicit_station_and_date_range(worklist: Daemon, tmp_path: Path) -> None:
    later = (practice_time.today() + timedelta(days=5)).strftime("%Y%m%d")
    items = query(
        worklist,
        "ALLROOMS",
        tmp_path / "later",
        f"ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate={later}",
    )
    assert [item.AccessionNumber for item in items] == ["ACC00004"]
    everything = query(
        worklist,
        "ALLROOMS",
        tmp_path / "all",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20000101-20991231",
    )
    assert sorted(item.AccessionNumber for item in everything) == [f"ACC0000{number}" for number in range(1, 7)]
    by_modality = query(worklist, "ALLROOMS", tmp_path / "mod", "ScheduledProcedureStepSequence[0].Modality=US")
    assert [item.AccessionNumber for item in by_modality] == ["ACC00002"]


def test_name_format_with_used_name_in_capitals_and_civility_as_prefix(worklist: Daemon, tmp_path: Path) -> None:
    items = query(worklist, "MAMMO", tmp_path / "mg")
    assert {item.AccessionNumber: str(item.PatientName) for item in items} == {
        "ACC00005": "MARTIN^JEANNETTE",  # used name and used given name, not the birth name DARK
        "ACC00006": "VANILLA^LAURA^^MME",  # Mme moved from the suffix to the prefix
    }
    (birth,) = query(worklist, "ALLROOMS", tmp_path / "all", "PatientName=DARK*")
    assert str(birth.PatientName) == "DARK^Jeanne"  # the default profile: birth name, as recorded


@pytest.mark.parametrize(
    ("pattern", "accessions"),
    [("?UVRARD*", ["ACC00001", "ACC00002"]), ("??UVRARD*", []), ("OEUV*", ["ACC00001", "ACC00002"])],
)
def test_patient_name_wildcards_match_characters_of_the_stored_name(
    worklist: Daemon, tmp_path: Path, pattern: str, accessions: list[str]
) -> None:
    step_date = "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20000101-20991231"
    items = query(worklist, "ALLROOMS", tmp_path / "names", f"PatientName={pattern}", step_date)
    assert sorted(item.AccessionNumber for item in items) == accessions  # ? is Œ, one character


def test_peer_without_worklist_right_is_refused(worklist: Daemon, tmp_path: Path) -> None:
    result = run(["findscu", "-v", "-W", "-aet", "QUERYONLY", "-aec", "APPLIANCE_MWL", "-k", "PatientName",
                  "127.0.0.1", str(worklist.port)], check=False)  # fmt: skip
    assert "Status: 0x124" in result.stdout + result.stderr  # 0124H Refused: Not Authorized (PS3.7 C.5)
    assert "worklist query from QUERYONLY refused: no worklist right" in worklist.log()


def test_preview_prints_what_the_modality_receives(worklist: Daemon) -> None:
    output = cli(worklist.config_path, "worklist", "preview", "--as", "VOLUSON").stdout
    assert "1 item(s) for VOLUSON (profile: VOLUSON)" in output
    assert "OEUVRARD" in output and "ISO_IR 100" in output
    assert "MARTIN^JEANNETTE" in cli(worklist.config_path, "worklist", "preview", "--as", "MAMMO").stdout


def test_the_ins_goes_to_the_modality_with_its_issuer(worklist: Daemon) -> None:
    assoc = associate(worklist.port, MODALITY_WORKLIST_FIND, ae_title="CT_SALLE1")
    answers = [answer for status, answer in assoc.send_c_find(typical_query(), MODALITY_WORKLIST_FIND) if answer]
    assoc.release()
    (item,) = answers
    (other,) = item.OtherPatientIDsSequence
    assert (other.PatientID, other.IssuerOfPatientID) == ("261017510612345", "ASIP-SANTE-INS-NIR")
    assert other.IssuerOfPatientIDQualifiersSequence[0].UniversalEntityID == "1.2.250.1.213.1.4.8"


def test_sighup_puts_a_changed_profile_in_force(worklist: Daemon, tmp_path: Path) -> None:
    """A modality's profile changed in the configuration applies at the next query after a reload,
    with an association opened before it still answered."""
    import signal

    import yaml
    from servers import wait_for

    held = associate(worklist.port, MODALITY_WORKLIST_FIND, ae_title="ALLROOMS")
    before = [answer for _status, answer in held.send_c_find(typical_query(), MODALITY_WORKLIST_FIND) if answer]
    config = yaml.safe_load(worklist.config_path.read_text())
    config["worklist"]["profiles"] = [
        {**profile, "maximum_items": 1} if profile["ae_title"] == "ALLROOMS" else profile
        for profile in config["worklist"]["profiles"]
    ]
    worklist.config_path.write_text(yaml.safe_dump(config, allow_unicode=True))
    assert worklist.process is not None
    worklist.process.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in worklist.log(), "the reload")
    after = [answer for _status, answer in held.send_c_find(typical_query(), MODALITY_WORKLIST_FIND) if answer]
    held.release()
    assert len(before) >= 4 and len(after) == 1
