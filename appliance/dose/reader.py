"""A typed reader of X-Ray Radiation Dose SRs (PS3.16): TID 10011 CT Radiation Dose, TID 10001
Projection X-Ray Radiation Dose with its events (TID 10003) and the mammography items.

highdicom turns the content tree into typed content items; this module finds what the register
keeps by concept code (DCM 113xxx, SCT), never by position, and converts every value to the
register's units (mGy, mGy.cm, Gy.cm2, mm) from the UCUM unit the device wrote. A value missing or
in a unit it does not know is left empty and named in `gaps`; a tree it cannot read at all raises
`UnreadableReport` with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, cast

from highdicom.sr import ContentItem, ContentSequence
from pydicom.dataset import Dataset

XRAY_RADIATION_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"
ENHANCED_XRAY_RADIATION_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.76"
DOSE_SR_CLASSES = frozenset({XRAY_RADIATION_DOSE_SR, ENHANCED_XRAY_RADIATION_DOSE_SR})

CT = "ct"
PROJECTION = "projection"
MAMMOGRAPHY = "mammography"

# Concept names (DCM unless said), PS3.16.
REPORT = "113701"  # X-Ray Radiation Dose Report
PROCEDURE_REPORTED = "121058"
CT_ACCUMULATED = "113811"  # CT Accumulated Dose Data
CT_DLP_TOTAL = "113813"
CT_ACQUISITION = "113819"
CT_SCANNING_LENGTH = "113825"
CT_MEAN_CTDI_VOL = "113830"
CT_PHANTOM_TYPE = "113835"
CT_DLP = "113838"
ACCUMULATED_XRAY = "113702"  # Accumulated X-Ray Dose Data
DAP_TOTAL = "113722"
DOSE_RP_TOTAL = "113725"
ACCUMULATED_AGD = "111637"
XRAY_EVENT = "113706"  # Irradiation Event X-Ray Data
EVENT_DAP = "122130"
EVENT_DOSE_RP = "113738"
AVERAGE_GLANDULAR_DOSE = "111631"
ENTRANCE_EXPOSURE = "111636"
COMPRESSION_THICKNESS = "111633"
IMAGE_VIEW = "111031"
LATERALITY = ("272741003", "G-C171")  # SCT, SRT
PROTOCOL = "125203"
TARGET_REGION = "123014"
CT_ACQUISITION_TYPE = "113820"
EVENT_TYPE = "113721"
EVENT_UID = "113769"
DEVICE_MANUFACTURER = "121014"
DEVICE_MODEL = "121015"
DEVICE_NAME = "121013"

PROCEDURES = {
    "77477000": CT, "P5-08000": CT,  # SCT / SRT Computed Tomography
    "113704": PROJECTION,  # DCM Projection X-Ray
    "71651007": MAMMOGRAPHY, "P5-40010": MAMMOGRAPHY,  # SCT / SRT Mammography
}  # fmt: skip
PHANTOMS = {"113690": 16, "113691": 32}  # IEC Head (16 cm) / Body (32 cm) Dosimetry Phantom

# UCUM unit -> (register unit, factor)
UNITS = {
    "mGy": ("mGy", 1.0), "Gy": ("mGy", 1000.0), "uGy": ("mGy", 0.001), "dGy": ("mGy", 100.0),
    "mGy.cm": ("mGy.cm", 1.0), "Gy.cm": ("mGy.cm", 1000.0), "mGy.mm": ("mGy.cm", 0.1),
    "Gy.m2": ("Gy.cm2", 10000.0), "Gy.cm2": ("Gy.cm2", 1.0), "dGy.cm2": ("Gy.cm2", 0.1),
    "cGy.cm2": ("Gy.cm2", 0.01), "mGy.cm2": ("Gy.cm2", 0.001), "uGy.m2": ("Gy.cm2", 0.01),
    "mm": ("mm", 1.0), "cm": ("mm", 10.0), "m": ("mm", 1000.0),
}  # fmt: skip


class UnreadableReport(Exception):
    """The object is not a dose report this reader understands; `problem` is a code the console words."""

    def __init__(self, problem: str, detail: str) -> None:
        super().__init__(f"{problem}: {detail}")
        self.problem = problem
        self.detail = detail


@dataclass(frozen=True)
class IrradiationEvent:
    """One irradiation event (a CT acquisition, a radiograph, a mammography view), register units."""

    number: int
    event_uid: str = ""
    protocol: str = ""
    target_region: str = ""
    acquisition_type: str = ""
    ctdi_vol_mgy: float | None = None
    dlp_mgy_cm: float | None = None
    phantom_cm: int | None = None
    scan_length_mm: float | None = None
    dap_gy_cm2: float | None = None
    air_kerma_mgy: float | None = None
    agd_mgy: float | None = None
    entrance_dose_mgy: float | None = None
    compression_thickness_mm: float | None = None
    view: str = ""
    laterality: str = ""


@dataclass(frozen=True)
class Device:
    manufacturer: str = ""
    model: str = ""
    station_name: str = ""


@dataclass(frozen=True)
class PatientAtExam:
    """What the survey needs of the patient at the time of the exam (never the identity)."""

    age_years: float | None = None
    sex: str = ""
    weight_kg: float | None = None
    height_cm: float | None = None


@dataclass(frozen=True)
class DoseReport:
    sop_instance_uid: str
    study_instance_uid: str
    procedure: str  # CT, PROJECTION or MAMMOGRAPHY
    exam_date: str  # YYYYMMDD
    study_description: str
    device: Device
    patient: PatientAtExam
    events: tuple[IrradiationEvent, ...]
    dlp_total_mgy_cm: float | None = None
    dap_total_gy_cm2: float | None = None
    air_kerma_total_mgy: float | None = None
    agd_total_mgy: float | None = None
    gaps: tuple[str, ...] = field(default=())  # what was missing or in an unknown unit


def read_dose_report(dataset: Dataset) -> DoseReport:
    """The register's view of one Radiation Dose SR. Raises UnreadableReport."""
    tree = content_tree(dataset)
    procedure = procedure_of(dataset, tree)
    gaps: list[str] = []
    events = ct_events(tree, gaps) if procedure == CT else xray_events(tree, gaps)
    totals = totals_of(tree, procedure, events, gaps)
    return DoseReport(
        sop_instance_uid=str(dataset.get("SOPInstanceUID", "")),
        study_instance_uid=str(dataset.get("StudyInstanceUID", "")),
        procedure=procedure,
        exam_date=str(dataset.get("StudyDate", "") or dataset.get("ContentDate", "")),
        study_description=str(dataset.get("StudyDescription", ""))[:64],
        device=device_of(dataset, tree),
        patient=patient_of(dataset),
        events=tuple(events),
        gaps=tuple(gaps),
        **totals,
    )


def content_tree(dataset: Dataset) -> list[ContentItem]:
    """The root's children as highdicom content items; the root must be an X-Ray Radiation Dose Report."""
    if str(dataset.get("SOPClassUID", "")) not in DOSE_SR_CLASSES:
        raise UnreadableReport("not-a-dose-report", f"SOP class {dataset.get('SOPClassUID', '(none)')}")
    root = concept_of(dataset)
    if root != REPORT:
        raise UnreadableReport("not-a-dose-report", f"root concept {root or '(none)'} instead of DCM {REPORT}")
    if "ContentSequence" not in dataset:
        raise UnreadableReport("unreadable-content", "the report has no content")
    try:
        return list(cast(Iterable[ContentItem], ContentSequence.from_sequence(dataset.ContentSequence)))
    except (AttributeError, ValueError, TypeError, KeyError, IndexError) as error:
        raise UnreadableReport("unreadable-content", f"{type(error).__name__}: {error}"[:500]) from error


def concept_of(dataset: Dataset) -> str:
    names = dataset.get("ConceptNameCodeSequence") or []
    return str(names[0].get("CodeValue", "")) if names else ""


def children(item: ContentItem) -> list[ContentItem]:
    return list(getattr(item, "ContentSequence", None) or [])


def walk(items: Sequence[ContentItem]) -> Iterator[ContentItem]:
    """Every item below `items`, depth first."""
    for item in items:
        yield item
        yield from walk(children(item))


def named(items: Sequence[ContentItem], *codes: str, deep: bool = True) -> list[ContentItem]:
    """The items whose concept name is one of `codes` (among all descendants when `deep`)."""
    pool = walk(items) if deep else iter(items)
    return [item for item in pool if str(item.name.value) in codes]


def first(items: Sequence[ContentItem], *codes: str) -> ContentItem | None:
    found = named(items, *codes)
    return found[0] if found else None


def text(items: Sequence[ContentItem], *codes: str) -> str:
    """A TEXT (or UIDREF) item's value, or the meaning of a CODE item's value."""
    item = first(items, *codes)
    if item is None:
        return ""
    value: Any = item.value
    meaning = getattr(value, "meaning", None)
    return str(meaning if meaning is not None else value)[:64]


def code_value(items: Sequence[ContentItem], code: str) -> str:
    item = first(items, code)
    return str(getattr(getattr(item, "value", None), "value", "")) if item is not None else ""


def measure(items: Sequence[ContentItem], code: str, unit: str, what: str, gaps: list[str]) -> float | None:
    """A NUM item's value in `unit` (the register's), or None with a line in `gaps`."""
    item = first(items, code)
    value = getattr(item, "value", None) if item is not None else None
    if item is None or value is None:
        gaps.append(f"{what}: absent")
        return None
    written = str(getattr(getattr(item, "unit", None), "value", ""))
    known = UNITS.get(written)
    if known is None or known[0] != unit:
        gaps.append(f"{what}: unit {written!r} not understood")
        return None
    return round(float(value) * known[1], 6)


def optional_measure(items: Sequence[ContentItem], code: str, unit: str) -> float | None:
    """As `measure`, for values a device may leave out without it being a gap."""
    return measure(items, code, unit, "", []) if first(items, code) is not None else None


def procedure_of(dataset: Dataset, tree: list[ContentItem]) -> str:
    """CT, projection or mammography: Procedure reported first, then the template, then the content."""
    reported = PROCEDURES.get(code_value(named(tree, PROCEDURE_REPORTED, deep=False), PROCEDURE_REPORTED))
    if reported:
        return reported
    templates = dataset.get("ContentTemplateSequence") or []
    if (templates and str(templates[0].get("TemplateIdentifier", "")) == "10011") or named(tree, CT_ACQUISITION):
        return CT
    if named(tree, AVERAGE_GLANDULAR_DOSE, ACCUMULATED_AGD):
        return MAMMOGRAPHY
    if named(tree, XRAY_EVENT, ACCUMULATED_XRAY):
        return PROJECTION
    raise UnreadableReport("unknown-procedure", "neither CT acquisitions nor X-ray irradiation events")


def ct_events(tree: list[ContentItem], gaps: list[str]) -> list[IrradiationEvent]:
    """TID 10013 CT Acquisition containers, in order."""
    events = []
    for number, acquisition in enumerate(named(tree, CT_ACQUISITION, deep=False), start=1):
        inner = children(acquisition)
        what = f"acquisition {number}"
        events.append(
            IrradiationEvent(
                number=number,
                event_uid=text(inner, EVENT_UID),
                protocol=text(inner, PROTOCOL),
                target_region=text(inner, TARGET_REGION),
                acquisition_type=text(inner, CT_ACQUISITION_TYPE),
                ctdi_vol_mgy=ct_dose(inner, CT_MEAN_CTDI_VOL, "mGy", f"{what} CTDIvol", gaps),
                dlp_mgy_cm=ct_dose(inner, CT_DLP, "mGy.cm", f"{what} DLP", gaps),
                phantom_cm=PHANTOMS.get(code_value(inner, CT_PHANTOM_TYPE)),
                scan_length_mm=optional_measure(inner, CT_SCANNING_LENGTH, "mm"),
            )
        )
    return events


def ct_dose(inner: list[ContentItem], code: str, unit: str, what: str, gaps: list[str]) -> float | None:
    """A scout or a constant angle acquisition may carry no CT Dose: only the others are gaps."""
    kind = text(inner, CT_ACQUISITION_TYPE).lower()
    if first(inner, code) is None and ("constant angle" in kind or "stationary" in kind):
        return None
    return measure(inner, code, unit, what, gaps)


def xray_events(tree: list[ContentItem], gaps: list[str]) -> list[IrradiationEvent]:
    """TID 10003 Irradiation Event X-Ray Data containers, in order (radiography and mammography)."""
    events = []
    for number, event in enumerate(named(tree, XRAY_EVENT, deep=False), start=1):
        inner = children(event)
        mammography = first(inner, AVERAGE_GLANDULAR_DOSE) is not None
        events.append(
            IrradiationEvent(
                number=number,
                event_uid=text(inner, EVENT_UID),
                protocol=text(inner, PROTOCOL),
                target_region=text(inner, TARGET_REGION),
                acquisition_type=text(inner, EVENT_TYPE),
                dap_gy_cm2=optional_measure(inner, EVENT_DAP, "Gy.cm2")
                if mammography
                else measure(inner, EVENT_DAP, "Gy.cm2", f"event {number} DAP", gaps),
                air_kerma_mgy=optional_measure(inner, EVENT_DOSE_RP, "mGy"),
                agd_mgy=optional_measure(inner, AVERAGE_GLANDULAR_DOSE, "mGy"),
                entrance_dose_mgy=optional_measure(inner, ENTRANCE_EXPOSURE, "mGy"),
                compression_thickness_mm=optional_measure(inner, COMPRESSION_THICKNESS, "mm"),
                view=text(inner, IMAGE_VIEW),
                laterality=text(inner, *LATERALITY)[:16],
            )
        )
    return events


def totals_of(
    tree: list[ContentItem], procedure: str, events: list[IrradiationEvent], gaps: list[str]
) -> dict[str, float | None]:
    """The accumulated values the report states (each only where the procedure has it)."""
    if procedure == CT:
        accumulated = named(tree, CT_ACCUMULATED, deep=False)
        scope = children(accumulated[0]) if accumulated else []
        return {"dlp_total_mgy_cm": measure(scope, CT_DLP_TOTAL, "mGy.cm", "total DLP", gaps)}
    accumulated = named(tree, ACCUMULATED_XRAY, deep=False)
    scope = [item for container in accumulated for item in children(container)]
    totals: dict[str, float | None] = {
        "dap_total_gy_cm2": optional_measure(scope, DAP_TOTAL, "Gy.cm2"),
        "air_kerma_total_mgy": optional_measure(scope, DOSE_RP_TOTAL, "mGy"),
    }
    if procedure == MAMMOGRAPHY:
        totals["agd_total_mgy"] = accumulated_glandular_dose(scope, events)
    elif totals["dap_total_gy_cm2"] is None:
        gaps.append("total DAP: absent")
    return totals


def accumulated_glandular_dose(scope: list[ContentItem], events: list[IrradiationEvent]) -> float | None:
    """The sum of the accumulated AGD per breast the report states, else of its views' AGDs."""
    stated = [optional_measure([item], ACCUMULATED_AGD, "mGy") for item in named(scope, ACCUMULATED_AGD)]
    values = [value for value in stated if value is not None]
    values = values or [event.agd_mgy for event in events if event.agd_mgy is not None]
    return round(sum(values), 6) if values else None


def device_of(dataset: Dataset, tree: list[ContentItem]) -> Device:
    """The device from the General Equipment module, else from the device observer context."""
    observer = named(tree, DEVICE_MANUFACTURER, DEVICE_MODEL, DEVICE_NAME, deep=False)
    return Device(
        manufacturer=str(dataset.get("Manufacturer", "") or text(observer, DEVICE_MANUFACTURER))[:64],
        model=str(dataset.get("ManufacturerModelName", "") or text(observer, DEVICE_MODEL))[:64],
        station_name=str(dataset.get("StationName", "") or text(observer, DEVICE_NAME))[:64],
    )


def patient_of(dataset: Dataset) -> PatientAtExam:
    """Age (Patient's Age, else from the birth date and the study date), sex, weight, height."""
    return PatientAtExam(
        age_years=age_of(str(dataset.get("PatientAge", "") or ""))
        or age_from_dates(str(dataset.get("PatientBirthDate", "") or ""), str(dataset.get("StudyDate", "") or "")),
        sex=str(dataset.get("PatientSex", "") or "")[:16],
        weight_kg=positive(dataset.get("PatientWeight")),
        height_cm=round(value * 100, 1) if (value := positive(dataset.get("PatientSize"))) is not None else None,
    )


def positive(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def age_of(value: str) -> float | None:
    """An AS value (PS3.5 6.2: nnnD, nnnW, nnnM, nnnY) in years."""
    if len(value) != 4 or not value[:3].isdigit() or value[3] not in "DWMY":
        return None
    days_per_unit = {"D": 1.0, "W": 7.0, "M": 365.25 / 12, "Y": 365.25}
    return round(int(value[:3]) * days_per_unit[value[3]] / 365.25, 2)


def age_from_dates(birth: str, exam: str) -> float | None:
    """Whole years between two DA values, or None when either is not a date."""
    born, examined = parse_date(birth), parse_date(exam)
    if born is None or examined is None or examined < born:
        return None
    return float(examined.year - born.year - ((examined.month, examined.day) < (born.month, born.day)))


def parse_date(value: str) -> date | None:
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8])) if len(value) == 8 else None
    except ValueError:
        return None
