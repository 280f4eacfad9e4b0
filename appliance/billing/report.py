"""The archiving supplements of a period (month or quarter): each study of the period classified
(`scope`), the billable ones with the rate in force on the exam date, the others with their reason,
and the totals; as values for the console and as CSV (French, semicolons) for the accountant.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, or_, select

from appliance.billing.scope import Classification, ImageEvidence, OrderCode, acquisition_attributes, classify
from appliance.config.reporting import BillingConfig, Rate
from appliance.db.schema import instance, instance_header, instance_metadata, patient, scheduled_step, series, study

PERIOD = re.compile(r"^(?P<year>[0-9]{4})-(?:(?P<month>0[1-9]|1[0-2])|Q(?P<quarter>[1-4]))$")
NEEDS_HEADER = frozenset({"MG", "OT", "SC"})  # where the acquisition's evidence is looked for


class BadPeriod(ValueError):
    """Not a month (2008-01) or a quarter (2008-Q1)."""


@dataclass(frozen=True)
class Period:
    name: str
    first: date
    last: date


@dataclass(frozen=True)
class BillingLine:
    study_instance_uid: str
    exam_date: date
    accession_number: str
    patient_id: str
    issuer: str
    patient_name: str
    modalities: str
    classification: Classification
    euros: Decimal  # 0 when out of scope


@dataclass(frozen=True)
class BillingReport:
    period: Period
    lines: tuple[BillingLine, ...]

    @property
    def billable(self) -> list[BillingLine]:
        return [line for line in self.lines if line.classification.in_scope]

    @property
    def excluded(self) -> list[BillingLine]:
        return [line for line in self.lines if not line.classification.in_scope]

    @property
    def total(self) -> Decimal:
        return sum((line.euros for line in self.lines), Decimal("0.00"))


def period_of(text: str) -> Period:
    """A month (YYYY-MM) or a quarter (YYYY-Qn), with its first and last days. Raises BadPeriod."""
    found = PERIOD.match(text.strip())
    if found is None:
        raise BadPeriod(f"{text!r} is neither a month (2008-01) nor a quarter (2008-Q1)")
    year = int(found["year"])
    first_month = int(found["month"]) if found["month"] else 3 * int(found["quarter"]) - 2
    months = 1 if found["month"] else 3
    first = date(year, first_month, 1)
    after = date(year + (first_month + months - 1) // 12, (first_month + months - 1) % 12 + 1, 1)
    return Period(text.strip(), first, after - timedelta(days=1))


def rate_on(rates: Sequence[Rate], day: date) -> Decimal:
    """The supplement in force on `day` (rates oldest first); 0 before the first."""
    applicable = [rate for rate in rates if rate.start <= day]
    return Decimal(str(applicable[-1].euros)).quantize(Decimal("0.01")) if applicable else Decimal("0.00")


def billing_report(engine: Engine, period: Period, config: BillingConfig) -> BillingReport:
    """Every study of the period (by exam date), classified and priced, oldest first."""
    with engine.connect() as connection:
        studies = studies_of(connection, period)
        lines = [line_of(connection, row, config) for row in studies]
    return BillingReport(period, tuple(lines))


def studies_of(connection: Connection, period: Period) -> list[dict[str, Any]]:
    statement = (
        select(
            study.c.id,
            study.c.study_instance_uid,
            study.c.study_date,
            study.c.accession_number,
            study.c.study_description,
            study.c.modalities_in_study,
            patient.c.patient_id,
            patient.c.issuer_of_patient_id,
            patient.c.patient_name,
        )
        .join(patient, patient.c.id == study.c.patient_pk)
        .where(
            study.c.study_date >= period.first.strftime("%Y%m%d"), study.c.study_date <= period.last.strftime("%Y%m%d")
        )
        .order_by(study.c.study_date, study.c.study_time, study.c.id)
    )
    return [dict(row._mapping) for row in connection.execute(statement)]


def line_of(connection: Connection, row: dict[str, Any], config: BillingConfig) -> BillingLine:
    exam_date = date(int(row["study_date"][:4]), int(row["study_date"][4:6]), int(row["study_date"][6:8]))
    classification = classify(
        evidence_of(connection, row["id"]), orders_of(connection, row), row["study_description"], config
    )
    return BillingLine(
        study_instance_uid=row["study_instance_uid"],
        exam_date=exam_date,
        accession_number=row["accession_number"],
        patient_id=row["patient_id"],
        issuer=row["issuer_of_patient_id"],
        patient_name=row["patient_name"],
        modalities=row["modalities_in_study"],
        classification=classification,
        euros=rate_on(config.rates, exam_date) if classification.in_scope else Decimal("0.00"),
    )


def evidence_of(connection: Connection, study_pk: int) -> list[ImageEvidence]:
    """Each instance's modality and SOP class; Conversion and Detector Type where they matter."""
    statement = (
        select(series.c.modality, instance.c.sop_class_uid, instance_metadata.c.document, instance_header.c.header)
        .join(series, series.c.id == instance.c.series_pk)
        .join(instance_metadata, instance_metadata.c.instance_pk == instance.c.id, isouter=True)
        .join(instance_header, instance_header.c.instance_pk == instance.c.id, isouter=True)
        .where(series.c.study_pk == study_pk)
    )
    evidence = []
    for modality, sop_class_uid, document, header in connection.execute(statement):
        conversion, detector = acquisition_attributes(document, header) if modality in NEEDS_HEADER else ("", "")
        evidence.append(ImageEvidence(modality, sop_class_uid, conversion, detector))
    return evidence


def orders_of(connection: Connection, row: dict[str, Any]) -> list[OrderCode]:
    """The procedure codes of the study's orders (by Study Instance UID or accession number)."""
    keys = [scheduled_step.c.study_instance_uid == row["study_instance_uid"]]
    if row["accession_number"]:
        keys.append(scheduled_step.c.accession_number == row["accession_number"])
    statement = select(
        scheduled_step.c.procedure_code_value,
        scheduled_step.c.procedure_code_scheme,
        scheduled_step.c.procedure_code_meaning,
        scheduled_step.c.requested_procedure_description,
    ).where(or_(*keys))
    return [OrderCode(*found) for found in connection.execute(statement)]


CSV_COLUMNS = [
    "date_examen", "numero_accession", "ipp", "patient", "modalites", "categorie", "dans_le_champ",
    "supplement_eur", "motif",
]  # fmt: skip


def report_csv(report: BillingReport, words: dict[str, str]) -> str:
    """The report as CSV (semicolons, decimal comma for the euros, a total line at the end);
    `words` gives the French of each category and reason code."""
    output = io.StringIO()
    writer = csv.writer(output, delimiter=";", lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for line in report.lines:
        writer.writerow(csv_cells(line, words))
    count = len(report.billable)
    writer.writerow(["total", "", "", "", "", f"{count} facturable(s)", "", euros(report.total), ""])
    return output.getvalue()


def csv_cells(line: BillingLine, words: dict[str, str]) -> list[str]:
    found = line.classification
    reason = found.detail if found.reason == "procedure-code" else words.get(found.reason, found.reason)
    if found.detail and found.reason not in ("", "procedure-code"):
        reason = f"{reason} ({found.detail})"
    return [
        line.exam_date.isoformat(),
        line.accession_number,
        line.patient_id,
        line.patient_name.replace("^", " ").strip(),
        line.modalities,
        words.get(found.category, found.category),
        "oui" if found.in_scope else "non",
        euros(line.euros),
        reason,
    ]


def euros(amount: Decimal) -> str:
    return f"{amount:.2f}".replace(".", ",")


# The French of the categories and reasons, for the command line's CSV (the console words its own).
FRENCH = {
    "radiology": "Radiologie conventionnelle",
    "mammography": "Mammographie",
    "obstetric-ultrasound": "Échographie obstétricale",
    "ct": "Scanographie",
    "mr": "IRM",
    "ultrasound": "Échographie",
    "other": "Autre",
    "configured": "Selon le code d'acte",
    "secondary-digitisation": "Mammographie issue d'une numérisation secondaire (hors champ)",
    "computed-radiography-mammogram": "Mammographie sur plaque (CR) : acquisition numérique directe à vérifier",
    "not-obstetric-ultrasound": "Échographie non obstétricale (hors champ)",
    "modality-out-of-scope": "Modalité hors du champ du cahier des charges",
}
