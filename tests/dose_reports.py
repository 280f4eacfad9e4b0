"""Radiation Dose SRs for the tests, built with highdicom's content items (it has no dose template):
CT (TID 10011), projection radiography (TID 10001/10003) and mammography, in the study of a
synthetic image made by `datagen`. Values are chosen so that the tests can check them by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

from datagen import PATIENTS, ROOT, Patient, make_instance
from highdicom.sr import (
    CodeContentItem,
    CodedConcept,
    ContainerContentItem,
    ContentSequence,
    NumContentItem,
    RelationshipTypeValues,
    TextContentItem,
    UIDRefContentItem,
)
from highdicom.sr.sop import _SR
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

XRAY_RADIATION_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"
CONTAINS = RelationshipTypeValues.CONTAINS
CONCEPT_MODIFIER = RelationshipTypeValues.HAS_CONCEPT_MOD


def dcm(value: str, meaning: str) -> CodedConcept:
    return CodedConcept(value, "DCM", meaning)


def sct(value: str, meaning: str) -> CodedConcept:
    return CodedConcept(value, "SCT", meaning)


def unit(value: str) -> CodedConcept:
    return CodedConcept(value, "UCUM", value)


def number(code: CodedConcept, value: float, units: str) -> NumContentItem:
    return NumContentItem(code, value, unit(units), relationship_type=CONTAINS)


def coded(code: CodedConcept, value: CodedConcept, relationship: RelationshipTypeValues = CONTAINS) -> CodeContentItem:
    return CodeContentItem(code, value, relationship_type=relationship)


def words(code: CodedConcept, value: str) -> TextContentItem:
    return TextContentItem(code, value, relationship_type=CONTAINS)


def container(
    code: CodedConcept, items: list[object], relationship: RelationshipTypeValues | None = CONTAINS
) -> ContainerContentItem:
    item = ContainerContentItem(code, relationship_type=relationship)
    item.ContentSequence = ContentSequence(items)
    return item


@dataclass(frozen=True)
class CtAcquisition:
    protocol: str
    ctdi_vol: float | None
    dlp: float | None
    length_mm: float = 150.0
    phantom: str = "113690"  # head (16 cm); 113691 body (32 cm)
    spiral: bool = True


def ct_acquisition(acquisition: CtAcquisition) -> ContainerContentItem:
    kind = sct("116152004", "Spiral Acquisition") if acquisition.spiral else dcm("113805", "Constant Angle Acquisition")
    dose: list[object] = []
    if acquisition.ctdi_vol is not None:
        dose.append(number(dcm("113830", "Mean CTDIvol"), acquisition.ctdi_vol, "mGy"))
    phantom = {"113690": "IEC Head Dosimetry Phantom", "113691": "IEC Body Dosimetry Phantom"}[acquisition.phantom]
    dose.append(coded(dcm("113835", "CTDIw Phantom Type"), dcm(acquisition.phantom, phantom)))
    if acquisition.dlp is not None:
        dose.append(number(dcm("113838", "DLP"), acquisition.dlp, "mGy.cm"))
    parameters = [number(dcm("113825", "Scanning Length"), acquisition.length_mm, "mm")]
    return container(
        dcm("113819", "CT Acquisition"),
        [
            words(dcm("125203", "Acquisition Protocol"), acquisition.protocol),
            coded(dcm("123014", "Target Region"), sct("69536005", "Head")),
            coded(dcm("113820", "CT Acquisition Type"), kind),
            UIDRefContentItem(
                dcm("113769", "Irradiation Event UID"), generate_uid(prefix=ROOT), relationship_type=CONTAINS
            ),
            container(dcm("113822", "CT Acquisition Parameters"), parameters),
            container(dcm("113829", "CT Dose"), dose),
        ],
    )


def document(image: Dataset, procedure: CodedConcept, items: list[object], template: str) -> Dataset:
    """An X-Ray Radiation Dose SR in the study of `image`, with the patient's age, weight and height."""
    root = container(
        dcm("113701", "X-Ray Radiation Dose Report"),
        [coded(dcm("121058", "Procedure reported"), procedure, CONCEPT_MODIFIER), *items],
        relationship=None,
    )
    report = _SR(
        evidence=[image],
        content=root,
        series_instance_uid=generate_uid(prefix=ROOT),
        series_number=999,
        sop_instance_uid=generate_uid(prefix=ROOT),
        sop_class_uid=XRAY_RADIATION_DOSE_SR,
        instance_number=1,
        manufacturer="Synthetic",
        is_complete=True,
        record_evidence=False,
    )
    report.ContentTemplateSequence = [template_item(template)]
    report.Manufacturer, report.ManufacturerModelName, report.StationName = "Synthetic", "Scanner 64", "SCANNER1"
    report.PatientWeight, report.PatientSize = 72.5, 1.68
    report.StudyDescription = image.StudyDescription
    return report


def template_item(identifier: str) -> Dataset:
    item = Dataset()
    item.MappingResource, item.TemplateIdentifier = "DCMR", identifier
    return item


def study_image(
    modality: str, patient: Patient = PATIENTS[0], description: str = "", study_date: str = "20261120"
) -> Dataset:
    image = make_instance(modality, patient, study_date=study_date, accession_number=f"A{generate_uid()[-10:]}")
    image.StudyDescription = description or image.StudyDescription
    return image


def ct_dose_report(image: Dataset, acquisitions: list[CtAcquisition], total_dlp: float | None = None) -> Dataset:
    """TID 10011 for the CT study of `image`; the total DLP is the sum unless given."""
    total = total_dlp if total_dlp is not None else sum(item.dlp or 0.0 for item in acquisitions)
    accumulated = container(
        dcm("113811", "CT Accumulated Dose Data"),
        [
            number(dcm("113812", "Total Number of Irradiation Events"), len(acquisitions), "{events}"),
            number(dcm("113813", "CT Dose Length Product Total"), total, "mGy.cm"),
        ],
    )
    items = [accumulated, *(ct_acquisition(acquisition) for acquisition in acquisitions)]
    return document(image, sct("77477000", "Computed Tomography"), items, "10011")


def radiography_dose_report(image: Dataset, events: list[tuple[str, float]]) -> Dataset:
    """TID 10001 with one TID 10003 event per (protocol, DAP in Gy.m2)."""
    accumulated = container(
        dcm("113702", "Accumulated X-Ray Dose Data"),
        [
            number(dcm("113722", "Dose Area Product Total"), sum(dap for _, dap in events), "Gy.m2"),
            number(dcm("113725", "Dose (RP) Total"), 0.0004 * len(events), "Gy"),
        ],
    )
    irradiations = [
        container(
            dcm("113706", "Irradiation Event X-Ray Data"),
            [
                words(dcm("125203", "Acquisition Protocol"), protocol),
                UIDRefContentItem(
                    dcm("113769", "Irradiation Event UID"), generate_uid(prefix=ROOT), relationship_type=CONTAINS
                ),
                number(dcm("122130", "Dose Area Product"), dap, "Gy.m2"),
                number(dcm("113738", "Dose (RP)"), 0.0004, "Gy"),
            ],
        )
        for protocol, dap in events
    ]
    return document(image, dcm("113704", "Projection X-Ray"), [accumulated, *irradiations], "10001")


def mammography_dose_report(image: Dataset, views: list[tuple[str, str, float, float]]) -> Dataset:
    """Projection X-ray dose for mammography: one event per (laterality R/L, view, AGD mGy, thickness mm)."""
    lateralities = {"R": sct("24028007", "Right"), "L": sct("7771000", "Left")}
    view_codes = {"CC": sct("399162004", "cranio-caudal"), "MLO": sct("399368009", "medio-lateral oblique")}
    events = [
        container(
            dcm("113706", "Irradiation Event X-Ray Data"),
            [
                words(dcm("125203", "Acquisition Protocol"), f"{side} {view}"),
                coded(sct("272741003", "Laterality"), lateralities[side]),
                coded(dcm("111031", "Image View"), view_codes[view]),
                number(dcm("111631", "Average Glandular Dose"), agd, "mGy"),
                number(dcm("111636", "Entrance Exposure at RP"), round(agd * 4, 3), "mGy"),
                number(dcm("111633", "Compression Thickness"), thickness, "mm"),
            ],
        )
        for side, view, agd, thickness in views
    ]
    accumulated = container(dcm("113702", "Accumulated X-Ray Dose Data"), [])
    return document(image, sct("71651007", "Mammography"), [accumulated, *events], "10001")


def encoded(dataset: Dataset) -> bytes:
    """The file as a modality sends it (with its meta information)."""
    import io

    output = io.BytesIO()
    dataset.save_as(output, enforce_file_format=True)
    return output.getvalue()
