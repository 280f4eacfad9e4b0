"""Each study against the specification's scope (Q2): conventional radiology, mammography acquired
directly in digital form (organised screening, follow-up of treated cancers), obstetric ultrasound
except pregnancy follow-up, CT and MR.

The order's procedure code decides first when the configuration maps it (CCAM codes when the RIS
sends them); then the images: modality, SOP class and, for mammography, the evidence of a
secondary digitisation (Secondary Capture, Conversion Type DF/SD/SI/DV, Detector Type FILM; a CR
plate is flagged too). The result is a value, worded by whoever shows it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from appliance.config.reporting import BillingConfig, ProcedureScope
from appliance.dose.register import matches

RADIOLOGY, MAMMOGRAPHY, OBSTETRIC_ULTRASOUND, CT, MR = "radiology", "mammography", "obstetric-ultrasound", "ct", "mr"
ULTRASOUND, OTHER, CONFIGURED = "ultrasound", "other", "configured"
# reasons for being out of scope
SECONDARY_DIGITISATION = "secondary-digitisation"
CR_MAMMOGRAM = "computed-radiography-mammogram"
NOT_OBSTETRIC = "not-obstetric-ultrasound"
MODALITY_OUT = "modality-out-of-scope"
PROCEDURE_CODE = "procedure-code"

RADIOLOGY_MODALITIES = frozenset({"CR", "DX", "RF", "RG", "DR"})
DIRECT_MAMMOGRAPHY_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.1.2",  # Digital Mammography X-Ray Image - For Presentation
        "1.2.840.10008.5.1.4.1.1.1.2.1",  # - For Processing
        "1.2.840.10008.5.1.4.1.1.13.1.3",  # Breast Tomosynthesis Image
        "1.2.840.10008.5.1.4.1.1.13.1.4",  # Breast Projection X-Ray Image - For Presentation
        "1.2.840.10008.5.1.4.1.1.13.1.5",  # - For Processing
    }
)
COMPUTED_RADIOGRAPHY = "1.2.840.10008.5.1.4.1.1.1"
DIGITISED = frozenset({"DF", "SD", "SI", "DV"})  # PS3.3 C.8.6.1 Conversion Type: film, scanned, video


@dataclass(frozen=True)
class ImageEvidence:
    """What one instance says about how it was acquired."""

    modality: str
    sop_class_uid: str
    conversion_type: str = ""
    detector_type: str = ""


@dataclass(frozen=True)
class OrderCode:
    value: str
    scheme: str
    meaning: str
    description: str


@dataclass(frozen=True)
class Classification:
    category: str
    in_scope: bool
    reason: str = ""  # one of the reasons above when out of scope
    detail: str = ""  # the configured reason, or what was found (a Conversion Type)


def classify(
    images: Sequence[ImageEvidence], orders: Sequence[OrderCode], study_description: str, config: BillingConfig
) -> Classification:
    """The scope of one study from its images and its orders' procedure codes."""
    configured = configured_scope(orders, config.procedure_codes)
    if configured is not None:
        reason = "" if configured.in_scope else PROCEDURE_CODE
        return Classification(configured.category or CONFIGURED, configured.in_scope, reason, configured.reason)
    modalities = {image.modality for image in images}
    if "CT" in modalities:
        return Classification(CT, True)
    if "MR" in modalities:
        return Classification(MR, True)
    if "MG" in modalities:
        return mammography([image for image in images if image.modality == "MG"])
    if modalities & RADIOLOGY_MODALITIES:
        return Classification(RADIOLOGY, True)
    if "US" in modalities:
        texts = [study_description, *(order.description for order in orders), *(order.meaning for order in orders)]
        if any(matches(text, config.obstetric_patterns) for text in texts if text):
            return Classification(OBSTETRIC_ULTRASOUND, True)
        return Classification(ULTRASOUND, False, NOT_OBSTETRIC)
    return Classification(OTHER, False, MODALITY_OUT, " ".join(sorted(modalities)))


def configured_scope(orders: Sequence[OrderCode], mapping: Sequence[ProcedureScope]) -> ProcedureScope | None:
    for order in orders:
        for entry in mapping:
            if entry.code == order.value and entry.scheme in ("", order.scheme):
                return entry
    return None


def mammography(images: Sequence[ImageEvidence]) -> Classification:
    """Direct digital acquisition only: any secondary digitisation excludes the study, a CR plate too."""
    for image in images:
        if image.conversion_type in DIGITISED or image.detector_type == "FILM":
            return Classification(MAMMOGRAPHY, False, SECONDARY_DIGITISATION, image.conversion_type or "FILM")
        if image.sop_class_uid.startswith("1.2.840.10008.5.1.4.1.1.7"):
            return Classification(MAMMOGRAPHY, False, SECONDARY_DIGITISATION, "Secondary Capture")
    if any(image.sop_class_uid == COMPUTED_RADIOGRAPHY or image.detector_type == "STORAGE" for image in images):
        return Classification(MAMMOGRAPHY, False, CR_MAMMOGRAM)
    if any(image.sop_class_uid in DIRECT_MAMMOGRAPHY_CLASSES for image in images):
        return Classification(MAMMOGRAPHY, True)
    return Classification(MAMMOGRAPHY, False, SECONDARY_DIGITISATION, "no direct digital image")


def acquisition_attributes(metadata_document: str | None, header: bytes | None) -> tuple[str, str]:
    """(Conversion Type, Detector Type) from the instance's DICOM JSON, else from its stored header."""
    if metadata_document:
        body = metadata_document.strip()  # the index keeps the object's members without its braces
        document = json.loads(body if body.startswith("{") else "{" + body + "}")
        return first_value(document, "00080064"), first_value(document, "00187004")
    if header:
        try:
            dataset = dcmread(BytesIO(header), force=True, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            return "", ""
        return str(dataset.get("ConversionType", "") or ""), str(dataset.get("DetectorType", "") or "")
    return "", ""


def first_value(document: dict[str, dict[str, list[object]]], tag: str) -> str:
    values = document.get(tag, {}).get("Value") or [""]
    return str(values[0]).strip().upper()
