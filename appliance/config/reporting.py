"""The typed `dose` and `billing` sections of the configuration (see schema.yaml): the survey's exam
types with their reference levels, and the archiving supplement's rates and procedure codes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any


@dataclass(frozen=True)
class ExamType:
    """One exam type of the NRD survey and its national reference levels (None: no level)."""

    code: str
    label: str
    modality: str
    patterns: tuple[str, ...]
    ctdi_vol_mgy: float | None = None
    dlp_mgy_cm: float | None = None
    dap_mgy_cm2: float | None = None
    agd_mgy: float | None = None
    source: str = ""


@dataclass(frozen=True)
class DoseConfig:
    screen_series_patterns: tuple[str, ...]
    exam_types: tuple[ExamType, ...]

    def exam_type(self, code: str) -> ExamType | None:
        return next((found for found in self.exam_types if found.code == code), None)


@dataclass(frozen=True)
class Rate:
    """The supplement in euros for exams from `start` on."""

    start: date
    euros: float


@dataclass(frozen=True)
class ProcedureScope:
    """What an order's procedure code says about the scope."""

    code: str
    scheme: str
    category: str
    in_scope: bool
    reason: str


@dataclass(frozen=True)
class BillingConfig:
    rates: tuple[Rate, ...]  # oldest first
    procedure_codes: tuple[ProcedureScope, ...]
    obstetric_patterns: tuple[str, ...]


def dose_config(section: dict[str, Any]) -> DoseConfig:
    return DoseConfig(
        screen_series_patterns=tuple(section["screen_series_patterns"]),
        exam_types=tuple(ExamType(**{**item, "patterns": tuple(item["patterns"])}) for item in section["exam_types"]),
    )


def billing_config(section: dict[str, Any]) -> BillingConfig:
    rates = [Rate(date.fromisoformat(item["from"]), float(item["euros"])) for item in section["rates"]]
    return BillingConfig(
        rates=tuple(sorted(rates, key=lambda rate: rate.start)),
        procedure_codes=tuple(
            ProcedureScope(
                code=item["code"],
                scheme=item.get("scheme", ""),
                category=item.get("category", ""),
                in_scope=item["scope"] == "in",
                reason=item.get("reason", ""),
            )
            for item in section["procedure_codes"]
        ),
        obstetric_patterns=tuple(section["obstetric_patterns"]),
    )
