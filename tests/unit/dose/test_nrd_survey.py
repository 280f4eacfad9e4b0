"""The NRD survey export for 30 synthetic CT head exams, checked by hand: columns, units, median
against the reference level in force (ct-head: CTDIvol 58 mGy, DLP 850 mGy.cm in the defaults)."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

from datagen import PATIENTS, encoded
from dose_reports import CtAcquisition, ct_dose_report, study_image
from sqlalchemy import Engine

from appliance.archive.index import Index
from appliance.archive.ingest import IncomingObject, Ingest, StoreOutcome
from appliance.archive.storage import FileStore
from appliance.config import development_config
from appliance.dose.register import register_round
from appliance.dose.survey import survey, survey_csv


def fill(engine: Engine, files: FileStore) -> None:
    """Exam i (0..29): CTDIvol 30 + i mGy, DLP 500 + 20 i mGy.cm, after a scout; one chest CT besides."""
    ingest = Ingest(files, Index(engine))
    for number in range(30):
        image = study_image(
            "CT", PATIENTS[number % 4], description="TDM encéphale", study_date=f"202611{number % 28 + 1:02d}"
        )
        scout = CtAcquisition("Topogramme", None, None, spiral=False)
        helix = CtAcquisition("Encéphale sans injection", 30.0 + number, 500.0 + 20 * number, length_mm=160)
        report = ct_dose_report(image, [scout, helix])
        report.PatientAge = "045Y"
        incoming = IncomingObject(encoded(report), report.SOPInstanceUID, report.SOPClassUID, "SCANNER")
        assert ingest.store(incoming).outcome is StoreOutcome.STORED
    chest = ct_dose_report(study_image("CT", description="TDM thorax"), [CtAcquisition("Thorax", 8.0, 300.0)])
    assert (
        ingest.store(IncomingObject(encoded(chest), chest.SOPInstanceUID, chest.SOPClassUID, "SCANNER")).outcome
        is StoreOutcome.STORED
    )


def test_thirty_ct_head_exams(engine: Engine, tmp_path: Path) -> None:
    files = FileStore(tmp_path / "data", 0)
    fill(engine, files)
    config = development_config(files.data_directory).dose
    assert register_round(engine, files, config).read == 31
    head = config.exam_type("ct-head")
    assert head is not None and (head.ctdi_vol_mgy, head.dlp_mgy_cm) == (58, 850)
    found = survey(engine, head, date(2026, 11, 1), date(2026, 11, 30))
    assert len(found.measurements) == 30  # the chest CT is not a head CT
    ctdi, dlp = found.summaries
    # sorted CTDIvol 30..59: the 15th and 16th are 44 and 45; DLP 500..1080 by 20: 780 and 800
    assert (ctdi.quantity, ctdi.unit, ctdi.median, ctdi.reference, ctdi.above) == ("ctdi_vol_mgy", "mGy", 44.5, 58, 1)
    assert (dlp.quantity, dlp.unit, dlp.median, dlp.reference, dlp.above) == ("dlp_mgy_cm", "mGy.cm", 790.0, 850, 12)
    assert not ctdi.median_above and not dlp.median_above
    assert len(found.above()) == 12  # DLP 860..1080 (the CTDIvol of 59 is among them)
    table = list(csv.reader(io.StringIO(survey_csv(found)), delimiter=";"))
    assert table[0] == [
        "type_examen", "date_examen", "appareil", "age_ans", "sexe", "poids_kg", "taille_cm",
        "protocole", "idsv_mGy", "pdl_mGy.cm", "fantome_cm", "longueur_mm", "pdl_total_examen_mGy.cm",
    ]  # fmt: skip
    assert len(table) == 31
    first = table[1]
    assert first == [
        "ct-head", "2026-11-01", "Synthetic Scanner 64 SCANNER1", "45", "F", "72.5", "168",
        "Encéphale sans injection", "30", "500", "16", "160", "500",
    ]  # fmt: skip
    assert sorted(float(row[8]) for row in table[1:]) == [30.0 + number for number in range(30)]
