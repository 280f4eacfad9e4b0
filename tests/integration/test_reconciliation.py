"""Reconciliation (P2): images join the ordered patient; what leaves the archive carries the current
identity, the original values kept in the Original Attributes Sequence; unreconciled studies are
listed and attached by a command."""

from __future__ import annotations

from pathlib import Path

import pytest
from datagen import PATIENTS, write_series
from pydicom import dcmread
from servers import Daemon, archive_config, cli, get_study, run, write_config
from worklist_data import add_patient, new_order, schedule

from appliance.config import load_config
from appliance.db import create_index_engine, upgrade_schema


@pytest.fixture()
def archive_with_order(tmp_path: Path) -> Daemon:
    config_path = write_config(tmp_path / "a.yaml", archive_config(tmp_path / "data", 1))
    loaded = load_config(config_path)
    engine = create_index_engine(loaded.database_url)
    upgrade_schema(engine, loaded.storage.index_directory)
    patient_pk = add_patient(engine, "IPP-RIS", "DUPONT^Jean-François", "19750203", "M")
    schedule(engine, loaded, new_order(1, "CT", "CT_SALLE1"), patient_pk)
    engine.dispose()
    return Daemon("appliance.daemons.archive", config_path, tmp_path / "log")


def study_patient_ids(daemon: Daemon, tmp_path: Path, name: str) -> list[str]:
    directory = tmp_path / name
    directory.mkdir()
    run(["findscu", "-S", "-aec", "APPLIANCE", "-X", "-od", str(directory), "-k", "QueryRetrieveLevel=STUDY",
         "-k", "AccessionNumber", "-k", "PatientID", "127.0.0.1", str(daemon.port)])  # fmt: skip
    return sorted(f"{answer.AccessionNumber}:{answer.PatientID}" for answer in map(dcmread, directory.iterdir()))


def test_images_join_the_ordered_patient_and_go_out_coerced(archive_with_order: Daemon, tmp_path: Path) -> None:
    typed_wrong = PATIENTS[1].__class__("TYPO-42", "DUPONT^JF", "19750203", "M", "ISO_IR 100")
    ordered = write_series(tmp_path / "ordered", 2, "CT", typed_wrong, accession_number="ACC00001")
    unordered = write_series(tmp_path / "unordered", 1, "MR", PATIENTS[3], accession_number="NOORDER")
    daemon = archive_with_order.start()
    try:
        run(["storescu", "-aec", "APPLIANCE", "127.0.0.1", str(daemon.port), *map(str, ordered + unordered)])
        assert study_patient_ids(daemon, tmp_path, "find1") == ["ACC00001:IPP-RIS", "NOORDER:IPP0004"]
        retrieved = [
            dcmread(path)
            for path in get_study(
                daemon.port,
                tmp_path / "get1",
                "QueryRetrieveLevel=STUDY",
                f"StudyInstanceUID={dcmread(ordered[0]).StudyInstanceUID}",
            )
        ]
        assert len(retrieved) == 2
        for copy in retrieved:
            assert (copy.PatientID, str(copy.PatientName)) == ("IPP-RIS", "DUPONT^Jean-François")
            (original,) = copy.OriginalAttributesSequence[0].ModifiedAttributesSequence
            assert (original.PatientID, str(original.PatientName)) == ("TYPO-42", "DUPONT^JF")
            assert copy.OriginalAttributesSequence[0].ReasonForTheAttributeModification == "COERCE"
        listing = cli(daemon.config_path, "archive", "unreconciled").stdout
        assert "1 study(ies) match no order" in listing and "NOORDER" in listing
        unordered_uid = dcmread(unordered[0]).StudyInstanceUID
        attached = cli(
            daemon.config_path, "archive", "attach", unordered_uid, "--patient-id", "IPP-RIS", "--issuer", "CABINET"
        ).stdout
        assert "attached" in attached
        assert study_patient_ids(daemon, tmp_path, "find2") == ["ACC00001:IPP-RIS", "NOORDER:IPP-RIS"]
        (moved,) = [
            dcmread(path)
            for path in get_study(
                daemon.port, tmp_path / "get2", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={unordered_uid}"
            )
        ]
        assert moved.PatientID == "IPP-RIS"
        assert moved.OriginalAttributesSequence[0].ModifiedAttributesSequence[0].PatientID == "IPP0004"
    finally:
        daemon.stop()


def test_attach_refuses_an_unknown_study_and_an_unknown_patient(archive_with_order: Daemon, tmp_path: Path) -> None:
    config_path = archive_with_order.config_path
    ris_patient = ("--patient-id", "IPP-RIS", "--issuer", "CABINET")
    unknown_study = cli(config_path, "archive", "attach", "1.2.3", *ris_patient, check=False)
    assert unknown_study.returncode == 1 and "1.2.3: unknown-study" in unknown_study.stdout
    series = write_series(tmp_path / "unordered", 1, "MR", PATIENTS[3], accession_number="NOORDER")
    daemon = archive_with_order.start()
    try:
        run(["storescu", "-aec", "APPLIANCE", "127.0.0.1", str(daemon.port), *map(str, series)])
    finally:
        daemon.stop()
    study_uid = dcmread(series[0]).StudyInstanceUID
    unknown_patient = cli(config_path, "archive", "attach", study_uid, "--patient-id", "NOBODY", check=False)
    assert unknown_patient.returncode == 1 and f"{study_uid}: unknown-patient" in unknown_patient.stdout
    attached = cli(config_path, "archive", "attach", study_uid, *ris_patient)
    assert f"{study_uid}: attached" in attached.stdout
