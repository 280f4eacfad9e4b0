"""The dose register end to end: Radiation Dose SRs sent by a real C-STORE (pynetdicom SCU) to the
running archive daemon, read by the running worker from the change feed; a malformed one is archived
all the same and recorded with its reason; `appliance dose export` then writes the survey."""

from __future__ import annotations

from pathlib import Path

from datagen import PATIENTS
from dose_reports import CtAcquisition, ct_dose_report, mammography_dose_report, radiography_dose_report, study_image
from pydicom.dataset import Dataset
from servers import Daemon, archive_config, associate, cli, wait_for, write_config
from sqlalchemy import select

from appliance.archive.index import Index
from appliance.config import load_config
from appliance.daemons.runtime import open_index
from appliance.db.schema import dose_report


def send(port: int, datasets: list[Dataset]) -> list[int]:
    association = associate(port, *sorted({str(dataset.SOPClassUID) for dataset in datasets}))
    assert association.is_established
    try:
        return [int(association.send_c_store(dataset).Status) for dataset in datasets]
    finally:
        association.release()


def test_stored_dose_reports_fill_the_register(tmp_path: Path) -> None:
    config_path = write_config(tmp_path / "appliance.yaml", archive_config(tmp_path / "data", 1))
    archive = Daemon("appliance.daemons.archive", config_path, tmp_path / "dicom.log").start()
    worker = Daemon("appliance.daemons.worker", config_path, tmp_path / "worker.log").start()
    head = ct_dose_report(study_image("CT", description="TDM encéphale"), [CtAcquisition("Encéphale", 61.0, 910.0)])
    chest = radiography_dose_report(study_image("DX", PATIENTS[1]), [("Thorax face", 0.0016)])
    breasts = mammography_dose_report(study_image("MG", PATIENTS[2]), [("R", "CC", 1.4, 50), ("L", "CC", 1.2, 48)])
    broken = ct_dose_report(study_image("CT", PATIENTS[3]), [CtAcquisition("Encéphale", 50.0, 800.0)])
    broken.ContentSequence[1].ContentSequence[0].ValueType = "BOGUS"
    try:
        assert send(archive.port, [head, chest, breasts, broken]) == [0, 0, 0, 0]
        engine = open_index(load_config(config_path))

        def registered() -> list[tuple[str, str, str]]:
            with engine.connect() as connection:
                statement = select(dose_report.c.sop_instance_uid, dose_report.c.status, dose_report.c.procedure)
                return [tuple(row) for row in connection.execute(statement)]

        wait_for(lambda: len(registered()) == 4, "the worker to read the four reports")
        found = {uid: (status, procedure) for uid, status, procedure in registered()}
        assert found[head.SOPInstanceUID] == ("read", "ct")
        assert found[chest.SOPInstanceUID] == ("read", "projection")
        assert found[breasts.SOPInstanceUID] == ("read", "mammography")
        assert found[broken.SOPInstanceUID][0] == "unreadable"
        assert Index(engine).stored_instance(broken.SOPInstanceUID) is not None
        engine.dispose()
    finally:
        worker.stop()
        archive.stop()
    assert "Traceback" not in worker.log()
    output = tmp_path / "nrd.csv"
    printed = cli(
        config_path,
        "dose",
        "export",
        "--exam-type",
        "ct-head",
        "--from",
        "2026-01-01",
        "--to",
        "2026-12-31",
        "--output",
        str(output),
    )
    assert "median 61 mGy, NRD 58 mGy (ABOVE the NRD); 1 above" in printed.stdout
    assert output.read_text(encoding="utf-8").splitlines()[1].startswith("ct-head;2026-11-20;")
