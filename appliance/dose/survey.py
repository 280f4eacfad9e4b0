"""The national survey of diagnostic reference levels (NRD): the register's exams of one exam type
over a period, the median of each quantity against the reference level in force, the exams above
it, and the CSV the survey takes.

One row per CT exam (its main acquisition: the one whose protocol names the exam type, else the one
with the largest DLP, never a scout), and one row per incidence (radiography) or view (mammography),
as the decision defines its levels. The patient is reached through the study at reading time, so
a merge is seen at once; the CSV itself names no patient (age, sex, weight and height only).
"""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Engine, select

from appliance.config.reporting import ExamType
from appliance.db.schema import dose_event, dose_report, patient, study
from appliance.dose.reader import CT, MAMMOGRAPHY, PROJECTION
from appliance.dose.register import READ, matches

PROCEDURE_OF_MODALITY = {"CT": CT, "DX": PROJECTION, "CR": PROJECTION, "MG": MAMMOGRAPHY}
# quantity -> (the exam type's reference attribute, CSV column, unit)
QUANTITIES = {
    "ctdi_vol_mgy": ("ctdi_vol_mgy", "idsv_mGy", "mGy"),
    "dlp_mgy_cm": ("dlp_mgy_cm", "pdl_mGy.cm", "mGy.cm"),
    "dap_mgy_cm2": ("dap_mgy_cm2", "pds_mGy.cm2", "mGy.cm2"),
    "agd_mgy": ("agd_mgy", "dmg_mGy", "mGy"),
}
QUANTITIES_OF = {CT: ("ctdi_vol_mgy", "dlp_mgy_cm"), PROJECTION: ("dap_mgy_cm2",), MAMMOGRAPHY: ("agd_mgy",)}


@dataclass(frozen=True)
class Measurement:
    """One row of the survey."""

    study_instance_uid: str
    exam_date: str  # YYYYMMDD
    device: str
    age_years: float | None
    sex: str
    weight_kg: float | None
    height_cm: float | None
    protocol: str
    values: dict[str, float | None]  # by quantity (QUANTITIES), in the survey's units
    phantom_cm: int | None = None
    scan_length_mm: float | None = None
    dlp_total_mgy_cm: float | None = None
    compression_thickness_mm: float | None = None
    view: str = ""
    laterality: str = ""
    patient_id: str = ""  # for the console's list of exams above the level (never in the CSV)
    issuer: str = ""
    patient_name: str = ""
    accession_number: str = ""


@dataclass(frozen=True)
class QuantitySummary:
    quantity: str
    unit: str
    median: float | None
    reference: float | None
    above: int  # measurements above the reference

    @property
    def median_above(self) -> bool:
        return self.median is not None and self.reference is not None and self.median > self.reference


@dataclass(frozen=True)
class Survey:
    exam_type: ExamType
    first: date
    last: date
    measurements: tuple[Measurement, ...]
    summaries: tuple[QuantitySummary, ...]

    def above(self) -> list[Measurement]:
        """The measurements above the reference level of any quantity."""
        return [found for found in self.measurements if above_reference(found, self.exam_type)]


def survey(engine: Engine, exam_type: ExamType, first: date, last: date) -> Survey:
    """The survey of `exam_type` for the exams from `first` to `last` (dates included)."""
    procedure = PROCEDURE_OF_MODALITY[exam_type.modality]
    reports, events = register_rows(engine, procedure, first, last)
    measurements: list[Measurement] = []
    for report in reports:
        measurements += measurements_of(report, events.get(report["id"], []), exam_type, procedure)
    return Survey(exam_type, first, last, tuple(measurements), summaries(exam_type, procedure, measurements))


def register_rows(
    engine: Engine, procedure: str, first: date, last: date
) -> tuple[list[dict[str, Any]], dict[int, list[dict[str, Any]]]]:
    """The read reports of one procedure in the period with the current patient, and their events."""
    statement = (
        select(
            dose_report,
            patient.c.patient_id,
            patient.c.issuer_of_patient_id.label("issuer"),
            patient.c.patient_name,
            study.c.accession_number,
        )
        .join(study, study.c.study_instance_uid == dose_report.c.study_instance_uid, isouter=True)
        .join(patient, patient.c.id == study.c.patient_pk, isouter=True)
        .where(
            dose_report.c.status == READ,
            dose_report.c.procedure == procedure,
            dose_report.c.exam_date >= first.strftime("%Y%m%d"),
            dose_report.c.exam_date <= last.strftime("%Y%m%d"),
        )
        .order_by(dose_report.c.exam_date, dose_report.c.id)
    )
    with engine.connect() as connection:
        reports = [dict(row._mapping) for row in connection.execute(statement)]
        identifiers = [report["id"] for report in reports]
        rows = connection.execute(
            select(dose_event).where(dose_event.c.report_pk.in_(identifiers)).order_by(dose_event.c.number)
        )
        events: dict[int, list[dict[str, Any]]] = {}
        for row in rows:
            events.setdefault(row.report_pk, []).append(dict(row._mapping))
    return reports, events


def measurements_of(
    report: dict[str, Any], events: list[dict[str, Any]], exam_type: ExamType, procedure: str
) -> list[Measurement]:
    if procedure == CT:
        main = main_acquisition(report, events, exam_type)
        return [measurement(report, main, exam_type)] if main is not None else []
    return [
        measurement(report, event, exam_type)
        for event in events
        if matches(event["protocol"], exam_type.patterns)
        or (not event["protocol"] and matches(report["study_description"], exam_type.patterns))
    ]


def main_acquisition(
    report: dict[str, Any], events: list[dict[str, Any]], exam_type: ExamType
) -> dict[str, Any] | None:
    """The acquisition the survey takes for a CT exam of `exam_type`, or None when it is not one."""
    helices = [event for event in events if event["dlp_mgy_cm"] is not None and event["ctdi_vol_mgy"] is not None]
    named = [event for event in helices if matches(event["protocol"], exam_type.patterns)]
    if named:
        return max(named, key=lambda event: event["dlp_mgy_cm"])
    if helices and matches(report["study_description"], exam_type.patterns):
        return max(helices, key=lambda event: event["dlp_mgy_cm"])
    return None


def measurement(report: dict[str, Any], event: dict[str, Any], exam_type: ExamType) -> Measurement:
    dap = event["dap_gy_cm2"]
    values: dict[str, float | None] = {
        "ctdi_vol_mgy": event["ctdi_vol_mgy"],
        "dlp_mgy_cm": event["dlp_mgy_cm"],
        "dap_mgy_cm2": round(dap * 1000, 3) if dap is not None else None,  # Gy.cm2 -> mGy.cm2
        "agd_mgy": event["agd_mgy"],
    }
    procedure = PROCEDURE_OF_MODALITY[exam_type.modality]
    return Measurement(
        study_instance_uid=report["study_instance_uid"],
        exam_date=report["exam_date"],
        device=" ".join(part for part in (report["manufacturer"], report["model"], report["station_name"]) if part),
        age_years=report["patient_age_years"],
        sex=report["patient_sex"],
        weight_kg=report["patient_weight_kg"],
        height_cm=report["patient_height_cm"],
        protocol=event["protocol"],
        values={quantity: values[quantity] for quantity in QUANTITIES_OF[procedure]},
        phantom_cm=event["phantom_cm"],
        scan_length_mm=event["scan_length_mm"],
        dlp_total_mgy_cm=report["dlp_total_mgy_cm"],
        compression_thickness_mm=event["compression_thickness_mm"],
        view=event["view"],
        laterality=event["laterality"],
        patient_id=report["patient_id"] or "",
        issuer=report["issuer"] or "",
        patient_name=report["patient_name"] or "",
        accession_number=report["accession_number"] or "",
    )


def reference(exam_type: ExamType, quantity: str) -> float | None:
    value = getattr(exam_type, QUANTITIES[quantity][0])
    return float(value) if value is not None else None


def above_reference(found: Measurement, exam_type: ExamType) -> bool:
    return any(
        value is not None and (level := reference(exam_type, quantity)) is not None and value > level
        for quantity, value in found.values.items()
    )


def summaries(exam_type: ExamType, procedure: str, measurements: Sequence[Measurement]) -> tuple[QuantitySummary, ...]:
    """Per quantity: the median of the values, the level, how many are above it."""
    result = []
    for quantity in QUANTITIES_OF[procedure]:
        values = [value for found in measurements if (value := found.values.get(quantity)) is not None]
        level = reference(exam_type, quantity)
        result.append(
            QuantitySummary(
                quantity=quantity,
                unit=QUANTITIES[quantity][2],
                median=round(statistics.median(values), 3) if values else None,
                reference=level,
                above=sum(1 for value in values if level is not None and value > level),
            )
        )
    return tuple(result)


COMMON_COLUMNS = ["type_examen", "date_examen", "appareil", "age_ans", "sexe", "poids_kg", "taille_cm"]
COLUMNS = {
    CT: ["protocole", "idsv_mGy", "pdl_mGy.cm", "fantome_cm", "longueur_mm", "pdl_total_examen_mGy.cm"],
    PROJECTION: ["incidence", "pds_mGy.cm2"],
    MAMMOGRAPHY: ["incidence", "lateralite", "epaisseur_sein_comprime_mm", "dmg_mGy"],
}


def columns(exam_type: ExamType) -> list[str]:
    return COMMON_COLUMNS + COLUMNS[PROCEDURE_OF_MODALITY[exam_type.modality]]


def survey_csv(found: Survey) -> str:
    """The survey as CSV: semicolons, a decimal point, dates as YYYY-MM-DD, one header line (README.md)."""
    output = io.StringIO()
    writer = csv.writer(output, delimiter=";", lineterminator="\r\n")
    writer.writerow(columns(found.exam_type))
    procedure = PROCEDURE_OF_MODALITY[found.exam_type.modality]
    for row in found.measurements:
        writer.writerow(common_cells(found.exam_type, row) + specific_cells(procedure, row))
    return output.getvalue()


def common_cells(exam_type: ExamType, row: Measurement) -> list[str]:
    day = row.exam_date
    return [
        exam_type.code,
        f"{day[:4]}-{day[4:6]}-{day[6:8]}" if len(day) == 8 else day,
        row.device,
        cell(row.age_years, 0),
        row.sex,
        cell(row.weight_kg, 1),
        cell(row.height_cm, 0),
    ]


def specific_cells(procedure: str, row: Measurement) -> list[str]:
    if procedure == CT:
        return [
            row.protocol,
            cell(row.values.get("ctdi_vol_mgy"), 2),
            cell(row.values.get("dlp_mgy_cm"), 1),
            cell(row.phantom_cm, 0),
            cell(row.scan_length_mm, 0),
            cell(row.dlp_total_mgy_cm, 1),
        ]
    if procedure == PROJECTION:
        return [row.protocol, cell(row.values.get("dap_mgy_cm2"), 1)]
    return [
        row.view or row.protocol,
        row.laterality,
        cell(row.compression_thickness_mm, 0),
        cell(row.values.get("agd_mgy"), 2),
    ]


def cell(value: float | int | None, decimals: int) -> str:
    """A number with at most `decimals` decimals and no trailing zeros; empty when unknown."""
    if value is None:
        return ""
    text = f"{float(value):.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def median_lines(found: Survey) -> Iterable[str]:
    """One line per quantity, for the command line."""
    for summary in found.summaries:
        median = cell(summary.median, 2) or "-"
        level = cell(summary.reference, 2) or "-"
        verdict = "ABOVE the NRD" if summary.median_above else "at or below the NRD"
        if summary.median is None or summary.reference is None:
            verdict = "not compared"
        unit = summary.unit
        yield f"{summary.quantity}: median {median} {unit}, NRD {level} {unit} ({verdict}); {summary.above} above"
