"""Reconciliation (P2): images join the ordered patient; what leaves the archive carries the current
identity, the original values kept in the Original Attributes Sequence; unreconciled studies are
listed and attached by a command."""

from __future__ import annotations

from pathlib import Path

import pytest
from datagen import PATIENTS, write_series
from pydicom import dcmread
from servers import Daemon, archive_config, cli, get_study, run, write_config
from sqlalchemy import select
from worklist_data import add_national_identifier, add_patient, new_order, schedule

from appliance.config import Config, load_config
from appliance.db import create_index_engine, upgrade_schema
from appliance.db.schema import patient


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
        assert "1 study(ies) match no order of their patient" in listing and "NOORDER" in listing
        assert f"{dcmread(unordered[0]).StudyInstanceUID}: no order" in listing
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


@pytest.fixture()
def archive_before_orders(tmp_path: Path) -> tuple[Daemon, Config]:
    """An archive that knows two patients from the RIS (IPP-RIS; IPP-KNOWN, with an identity) and no order."""
    config_path = write_config(tmp_path / "a.yaml", archive_config(tmp_path / "data", 1))
    loaded = load_config(config_path)
    engine = create_index_engine(loaded.database_url)
    upgrade_schema(engine, loaded.storage.index_directory)
    add_patient(engine, "IPP-RIS", "DUPONT^Jean-François", "19750203", "M")
    add_national_identifier(engine, add_patient(engine, "IPP-KNOWN", "MARTIN^Noël"), "180017512345678")
    engine.dispose()
    return Daemon("appliance.daemons.archive", config_path, tmp_path / "log"), loaded


def schedule_for(config: Config, patient_id: str, order_number: int) -> str:
    """Schedule order `order_number` (accession ACC0000n) for a patient, as the HL7 side does."""
    engine = create_index_engine(config.database_url)
    try:
        with engine.connect() as connection:
            patient_pk = connection.execute(select(patient.c.id).where(patient.c.patient_id == patient_id)).scalar_one()
        return schedule(engine, config, new_order(order_number, "CT", "CT_SALLE1"), patient_pk).detail
    finally:
        engine.dispose()


def test_images_before_their_order_join_its_patient_when_it_comes(
    archive_before_orders: tuple[Daemon, Config], tmp_path: Path
) -> None:
    archive, config = archive_before_orders
    typed_on_the_modality = PATIENTS[3]  # IPP0004: a patient the archive creates from the images
    early = write_series(tmp_path / "early", 2, "CT", typed_on_the_modality, accession_number="ACC00001")
    known = PATIENTS[1].__class__("IPP-KNOWN", "MARTIN^Noël", "19520101", "M", "ISO_IR 192")
    elsewhere = write_series(tmp_path / "elsewhere", 1, "MR", known, accession_number="ACC00002")
    daemon = archive.start()
    try:
        run(["storescu", "-aec", "APPLIANCE", "127.0.0.1", str(daemon.port), *map(str, early + elsewhere)])
        assert study_patient_ids(daemon, tmp_path, "before") == ["ACC00001:IPP0004", "ACC00002:IPP-KNOWN"]
        assert schedule_for(config, "IPP-RIS", 1) == "1 archived study(ies) joined the order's patient"
        assert schedule_for(config, "IPP-RIS", 2) == ""  # IPP-KNOWN has an identity: staff decide
        assert study_patient_ids(daemon, tmp_path, "after") == ["ACC00001:IPP-RIS", "ACC00002:IPP-KNOWN"]
        early_uid = dcmread(early[0]).StudyInstanceUID
        retrieved = get_study(
            daemon.port, tmp_path / "get", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={early_uid}"
        )
        for copy in map(dcmread, retrieved):
            assert (copy.PatientID, str(copy.PatientName)) == ("IPP-RIS", "DUPONT^Jean-François")
            assert copy.OriginalAttributesSequence[0].ModifiedAttributesSequence[0].PatientID == "IPP0004"
        listing = cli(daemon.config_path, "archive", "unreconciled").stdout
        assert "1 study(ies) match no order of their patient" in listing
        elsewhere_uid = dcmread(elsewhere[0]).StudyInstanceUID
        assert f"{elsewhere_uid}: its accession number is ordered for patient IPP-RIS" in listing
    finally:
        daemon.stop()
