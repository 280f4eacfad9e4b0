"""Synthetic DICOM objects for tests and benchmarks: realistic headers, body-like noisy pixels.

Nothing here comes from a real patient. Names are French on purpose (accents, Œ) and the character
set is chosen per object (ISO_IR 100 or ISO_IR 192).
"""

from __future__ import annotations

import io
import subprocess
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    DigitalMammographyXRayImageStorageForPresentation,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    MRImageStorage,
    RLELossless,
    UltrasoundMultiFrameImageStorage,
    generate_uid,
)
from pydicom.valuerep import PersonName

ROOT = "1.2.826.0.1.3680043.10.1471."


@dataclass(frozen=True)
class Modality:
    name: str
    sop_class: UID
    rows: int
    columns: int
    bits_stored: int
    signed: bool
    samples: int = 1
    frames: int = 1


MODALITIES = {
    "CT": Modality("CT", CTImageStorage, 512, 512, 16, True),
    "MR": Modality("MR", MRImageStorage, 256, 256, 12, False),
    "CR": Modality("CR", ComputedRadiographyImageStorage, 600, 500, 12, False),
    "DX": Modality("DX", DigitalXRayImageStorageForPresentation, 640, 512, 14, False),
    "MG": Modality("MG", DigitalMammographyXRayImageStorageForPresentation, 800, 640, 14, False),
    "US": Modality("US", UltrasoundMultiFrameImageStorage, 240, 320, 8, False, samples=3, frames=4),
}


@dataclass(frozen=True)
class Patient:
    patient_id: str
    name: str
    birth_date: str
    sex: str
    character_set: str


PATIENTS = [
    Patient("IPP0001", "ŒUVRARD^Chloé", "19610412", "F", "ISO_IR 192"),
    Patient("IPP0002", "DUPONT^Jean-François", "19750203", "M", "ISO_IR 100"),
    Patient("IPP0003", "LEFÈVRE^Hélène", "19880917", "F", "ISO_IR 100"),
    Patient("IPP0004", "MARTIN^Noël", "19520101", "M", "ISO_IR 192"),
]


def body_pixels(modality: Modality, seed: int) -> np.ndarray:
    """A body-like image: an ellipse of soft tissue with organs and noise, in the modality's range."""
    generator = np.random.default_rng(seed)
    rows, columns = modality.rows, modality.columns
    y, x = np.ogrid[:rows, :columns]
    body = ((x - columns / 2) / (columns * 0.42)) ** 2 + ((y - rows / 2) / (rows * 0.36)) ** 2 < 1
    organ = ((x - columns * 0.4) / (columns * 0.1)) ** 2 + ((y - rows * 0.45) / (rows * 0.12)) ** 2 < 1
    maximum = (1 << (modality.bits_stored - 1)) - 1 if modality.signed else (1 << modality.bits_stored) - 1
    base = np.where(body, maximum * 0.25, -maximum * 0.3 if modality.signed else 0)
    base = base + np.where(organ, maximum * 0.05, 0)
    texture = np.sin(x / 9.0) * np.cos(y / 13.0) * maximum * 0.01  # smooth anatomy-like structure
    # Quantum noise of a few units (about 15 HU on CT), as on real images.
    noisy = base + np.where(body, texture, 0) + generator.normal(0, max(2.0, maximum * 0.0005), size=(rows, columns))
    dtype = np.int16 if modality.signed else (np.uint8 if modality.bits_stored <= 8 else np.uint16)
    image = np.clip(noisy, -maximum if modality.signed else 0, maximum).astype(dtype)
    if modality.samples == 3:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if modality.frames > 1:
        image = np.stack([np.roll(image, shift * 3, axis=1) for shift in range(modality.frames)])
    return image


def make_instance(
    modality_name: str = "CT",
    patient: Patient = PATIENTS[0],
    study_uid: str | None = None,
    series_uid: str | None = None,
    instance_number: int = 1,
    accession_number: str = "ACC0001",
    study_date: str = "20261120",
    seed: int | None = None,
) -> Dataset:
    """One complete instance of `modality_name` for `patient`."""
    modality = MODALITIES[modality_name]
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.file_meta.MediaStorageSOPClassUID = modality.sop_class
    sop_instance_uid = generate_uid(prefix=ROOT)
    dataset.file_meta.MediaStorageSOPInstanceUID = sop_instance_uid
    dataset.SpecificCharacterSet = patient.character_set
    dataset.SOPClassUID = modality.sop_class
    dataset.SOPInstanceUID = sop_instance_uid
    dataset.StudyDate = dataset.SeriesDate = dataset.ContentDate = study_date
    dataset.StudyTime = dataset.SeriesTime = "101530"
    dataset.AccessionNumber = accession_number
    dataset.Modality = modality.name
    dataset.Manufacturer = "Synthetic"
    dataset.InstitutionName = "Cabinet de radiologie Saint-Étienne"
    dataset.ReferringPhysicianName = "GÉRARD^Anne^^Dr"
    dataset.StudyDescription = f"{modality.name} thorax"
    dataset.SeriesDescription = f"{modality.name} série 1"
    dataset.PatientName = patient.name
    dataset.PatientID = patient.patient_id
    dataset.IssuerOfPatientID = "CABINET"
    dataset.PatientBirthDate = patient.birth_date
    dataset.PatientSex = patient.sex
    dataset.BodyPartExamined = "CHEST"
    dataset.StudyInstanceUID = study_uid or generate_uid(prefix=ROOT)
    dataset.SeriesInstanceUID = series_uid or generate_uid(prefix=ROOT)
    dataset.StudyID = "1"
    dataset.SeriesNumber = 1
    dataset.InstanceNumber = instance_number
    add_pixels(dataset, modality, seed if seed is not None else instance_number)
    return dataset


def add_pixels(dataset: Dataset, modality: Modality, seed: int) -> None:
    pixels = body_pixels(modality, seed)
    dataset.SamplesPerPixel = modality.samples
    dataset.PhotometricInterpretation = "RGB" if modality.samples == 3 else "MONOCHROME2"
    if modality.samples == 3:
        dataset.PlanarConfiguration = 0
    if modality.frames > 1:
        dataset.NumberOfFrames = modality.frames
        dataset.FrameIncrementPointer = (0x0018, 0x1063)
        dataset.FrameTime = 33.0
    dataset.Rows, dataset.Columns = modality.rows, modality.columns
    dataset.BitsAllocated = 8 if modality.bits_stored <= 8 else 16
    dataset.BitsStored = modality.bits_stored
    dataset.HighBit = modality.bits_stored - 1
    dataset.PixelRepresentation = 1 if modality.signed else 0
    if modality.name == "CT":
        dataset.RescaleIntercept = -1024
        dataset.RescaleSlope = 1
        dataset.SliceThickness = 1.0
        dataset.KVP = 120
        dataset.ImagePositionPatient = [-250.0, -250.0, float(seed)]
        dataset.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        dataset.PixelSpacing = [0.7, 0.7]
        dataset.WindowCenter, dataset.WindowWidth = 40, 400
    dataset.PixelData = pixels.tobytes()


def encoded(dataset: Dataset) -> bytes:
    stream = io.BytesIO()
    dataset.save_as(stream, enforce_file_format=True)
    return stream.getvalue()


def write_series(
    directory: Path, count: int, modality_name: str = "CT", patient: Patient = PATIENTS[0], **keywords: str
) -> list[Path]:
    """`count` instances of one series written as files in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    study_uid = keywords.pop("study_uid", None) or generate_uid(prefix=ROOT)
    series_uid = generate_uid(prefix=ROOT)
    paths = []
    for number in range(1, count + 1):
        dataset = make_instance(modality_name, patient, study_uid, series_uid, number, **keywords)
        path = directory / f"{modality_name}{number:05d}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


# Objects beyond plain images (A1): reports, dose reports, key objects, presentation states, secondary
# captures, mammography for processing, and objects already compressed by the modality.

# Patient and study attributes an object shares with the images of its study.
STUDY_KEYWORDS = (
    "SpecificCharacterSet",
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyID",
    "StudyDescription",
    "InstitutionName",
)

OBSERVER = "BERTRAND^Étienne^^Dr"  # the radiologist who reads and signs

ENHANCED_SR = UID("1.2.840.10008.5.1.4.1.1.88.22")
XRAY_RADIATION_DOSE_SR = UID("1.2.840.10008.5.1.4.1.1.88.67")
KEY_OBJECT_SELECTION = UID("1.2.840.10008.5.1.4.1.1.88.59")
GRAYSCALE_PRESENTATION_STATE = UID("1.2.840.10008.5.1.4.1.1.11.1")
SECONDARY_CAPTURE = UID("1.2.840.10008.5.1.4.1.1.7")
MAMMOGRAPHY_FOR_PROCESSING = UID("1.2.840.10008.5.1.4.1.1.1.2.1")

# pydicom encoding plugins for the lossless syntaxes a modality may already use ("" = pydicom's own).
LOSSLESS_PLUGINS = {JPEGLSLossless: "pyjpegls", JPEG2000Lossless: "pylibjpeg", RLELossless: ""}


def code(value: str, scheme: str, meaning: str) -> Dataset:
    """One code sequence item (PS3.3 8.8)."""
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def content_item(relationship: str, value_type: str, concept: Dataset | None, **values: object) -> Dataset:
    """One SR content item (PS3.3 C.17.3); `values` are its value attributes, children included
    as `ContentSequence=[...]`. `relationship` is '' for the root; `concept` None for an item
    without a concept name (an IMAGE item of a key object selection)."""
    item = Dataset()
    if relationship:
        item.RelationshipType = relationship
    item.ValueType = value_type
    if concept is not None:
        item.ConceptNameCodeSequence = [concept]
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def numeric(relationship: str, concept: Dataset, value: str, unit: Dataset) -> Dataset:
    """A NUM content item: `value` (a DS string) in UCUM `unit`."""
    measured = Dataset()
    measured.NumericValue = value
    measured.MeasurementUnitsCodeSequence = [unit]
    return content_item(relationship, "NUM", concept, MeasuredValueSequence=[measured])


def text_item(relationship: str, concept: Dataset, text: str) -> Dataset:
    return content_item(relationship, "TEXT", concept, TextValue=text)


def code_item(relationship: str, concept: Dataset, value: Dataset) -> Dataset:
    return content_item(relationship, "CODE", concept, ConceptCodeSequence=[value])


def image_item(relationship: str, concept: Dataset | None, image: Dataset) -> Dataset:
    return content_item(relationship, "IMAGE", concept, ReferencedSOPSequence=[sop_reference(image)])


def sop_reference(image: Dataset) -> Dataset:
    reference = Dataset()
    reference.ReferencedSOPClassUID = image.SOPClassUID
    reference.ReferencedSOPInstanceUID = image.SOPInstanceUID
    return reference


def template(identifier: str) -> Dataset:
    item = Dataset()
    item.MappingResource = "DCMR"
    item.TemplateIdentifier = identifier
    return item


def evidence(images: list[Dataset]) -> list[Dataset]:
    """Hierarchical SOP Instance References (PS3.3 C.17.2.1) to `images`, by study and series."""
    studies: dict[str, dict[str, list[Dataset]]] = {}
    for image in images:
        studies.setdefault(image.StudyInstanceUID, {}).setdefault(image.SeriesInstanceUID, []).append(image)
    items = []
    for study_uid, series in studies.items():
        study_item = Dataset()
        study_item.StudyInstanceUID = study_uid
        study_item.ReferencedSeriesSequence = []
        for series_uid, members in series.items():
            series_item = Dataset()
            series_item.SeriesInstanceUID = series_uid
            series_item.ReferencedSOPSequence = [sop_reference(image) for image in members]
            study_item.ReferencedSeriesSequence.append(series_item)
        items.append(study_item)
    return items


def new_object_in_study(
    images: list[Dataset], sop_class: UID, modality: str, series_number: int, series_description: str
) -> Dataset:
    """A new instance of `sop_class`, in its own series of the study `images` belong to (same patient)."""
    first = images[0]
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.file_meta.MediaStorageSOPClassUID = sop_class
    sop_instance_uid = generate_uid(prefix=ROOT)
    dataset.file_meta.MediaStorageSOPInstanceUID = sop_instance_uid
    for keyword in STUDY_KEYWORDS:
        value = first.get(keyword)
        # A PersonName keeps the bytes of its first encoding (pydicom 3.0) and would write them again
        # whatever this object's character set: copy names as text.
        if value is not None:
            setattr(dataset, keyword, str(value) if isinstance(value, PersonName) else value)
    dataset.SOPClassUID = sop_class
    dataset.SOPInstanceUID = sop_instance_uid
    dataset.InstanceCreationDate = dataset.ContentDate = dataset.SeriesDate = first.StudyDate
    dataset.InstanceCreationTime = dataset.SeriesTime = "103212"
    dataset.ContentTime = "103212"
    dataset.Modality = modality
    dataset.SeriesInstanceUID = generate_uid(prefix=ROOT)
    dataset.SeriesNumber = series_number
    dataset.SeriesDescription = series_description
    dataset.InstanceNumber = 1
    dataset.Manufacturer = "Synthetic"
    dataset.ManufacturerModelName = "Console"  # with the next two: Enhanced General Equipment (PS3.3 C.7.5.2)
    dataset.DeviceSerialNumber = "SN-0042"
    dataset.SoftwareVersions = "1.0"
    dataset.ReferencedPerformedProcedureStepSequence = []
    return dataset


def sr_document(images: list[Dataset], sop_class: UID, series_description: str) -> Dataset:
    """The SR Document Series and General modules (PS3.3 C.17.1, C.17.2) of a verified report."""
    dataset = new_object_in_study(images, sop_class, "SR", 900, series_description)
    dataset.CompletionFlag = "COMPLETE"
    dataset.VerificationFlag = "VERIFIED"
    observer = Dataset()
    observer.VerifyingObserverName = OBSERVER
    observer.VerifyingObserverIdentificationCodeSequence = []
    observer.VerifyingOrganization = "Cabinet de radiologie Saint-Étienne"
    observer.VerificationDateTime = f"{dataset.ContentDate}114500"
    dataset.VerifyingObserverSequence = [observer]
    dataset.PerformedProcedureCodeSequence = [code("ZBQK001", "CCAM", "Scanographie du thorax")]
    dataset.CurrentRequestedProcedureEvidenceSequence = evidence(images)
    return dataset


def dcm(value: str, meaning: str) -> Dataset:
    """A code of the DICOM Controlled Terminology (PS3.16)."""
    return code(value, "DCM", meaning)


def ucum(unit: str, meaning: str = "") -> Dataset:
    """A unit of measurement (UCUM)."""
    return code(unit, "UCUM", meaning or unit)


def container(relationship: str, concept: Dataset, *children: Dataset) -> Dataset:
    return content_item(
        relationship, "CONTAINER", concept, ContinuityOfContent="SEPARATE", ContentSequence=list(children)
    )


def make_enhanced_sr(images: list[Dataset]) -> Dataset:
    """An Enhanced SR radiology report in French (TID 2000) with a measurement on one of `images`."""
    dataset = sr_document(images, ENHANCED_SR, "Compte rendu")
    dataset.SpecificCharacterSet = "ISO_IR 192"
    nodule = numeric("CONTAINS", code("410668003", "SCT", "Length"), "8", ucum("mm"))
    nodule.ContentSequence = [image_item("INFERRED FROM", dcm("121112", "Source of Measurement"), images[-1])]
    history = "Toux persistante depuis trois semaines ; tabagisme sevré."
    finding = "Nodule pulmonaire solide du lobe supérieur droit, à contours réguliers. Pas d'adénopathie médiastinale."
    impression = "Nodule de 8 mm : contrôle scanographique à 3 mois."
    language = dcm("121049", "Language of Content Item and Descendants")
    report = container(
        "",
        code("18748-4", "LN", "Diagnostic Imaging Report"),
        code_item("HAS CONCEPT MOD", language, code("fr-FR", "RFC5646", "French (France)")),
        content_item("HAS OBS CONTEXT", "PNAME", dcm("121008", "Person Observer Name"), PersonName=OBSERVER),
        container("CONTAINS", dcm("121060", "History"), text_item("CONTAINS", dcm("121060", "History"), history)),
        container(
            "CONTAINS", dcm("121070", "Findings"), text_item("CONTAINS", dcm("121071", "Finding"), finding), nodule
        ),
        container(
            "CONTAINS", dcm("121072", "Impressions"), text_item("CONTAINS", dcm("121073", "Impression"), impression)
        ),
    )
    dataset.update(report)
    dataset.ContentTemplateSequence = [template("2000")]
    return dataset


def ct_acquisition(
    protocol: str, acquisition_type: Dataset, seconds: str, length_mm: str, milliamperes: str, ctdi_vol: str, dlp: str
) -> Dataset:
    """One CT Acquisition container (TID 10013) with its parameters and dose (TID 10014, 10015)."""
    source = container(
        "CONTAINS",
        dcm("113831", "CT X-Ray Source Parameters"),
        text_item("CONTAINS", dcm("113832", "Identification of the X-Ray Source"), "A"),
        numeric("CONTAINS", dcm("113733", "KVP"), "120", ucum("kV")),
        numeric("CONTAINS", dcm("113833", "Maximum X-Ray Tube Current"), milliamperes, ucum("mA")),
        numeric("CONTAINS", dcm("113734", "X-Ray Tube Current"), milliamperes, ucum("mA")),
        numeric("CONTAINS", dcm("113834", "Exposure Time per Rotation"), "0.5", ucum("s")),
    )
    parameters = container(
        "CONTAINS",
        dcm("113822", "CT Acquisition Parameters"),
        numeric("CONTAINS", dcm("113824", "Exposure Time"), seconds, ucum("s")),
        numeric("CONTAINS", dcm("113825", "Scanning Length"), length_mm, ucum("mm")),
        numeric("CONTAINS", dcm("113826", "Nominal Single Collimation Width"), "0.625", ucum("mm")),
        numeric("CONTAINS", dcm("113827", "Nominal Total Collimation Width"), "40", ucum("mm")),
        numeric("CONTAINS", dcm("113828", "Pitch Factor"), "0.984", ucum("{ratio}", "ratio")),
        numeric("CONTAINS", dcm("113823", "Number of X-Ray Sources"), "1", ucum("{X-Ray sources}", "X-Ray sources")),
        source,
    )
    dose = container(
        "CONTAINS",
        dcm("113829", "CT Dose"),
        numeric("CONTAINS", dcm("113830", "Mean CTDIvol"), ctdi_vol, ucum("mGy")),
        code_item("CONTAINS", dcm("113835", "CTDIw Phantom Type"), dcm("113691", "IEC Body Dosimetry Phantom")),
        numeric("CONTAINS", dcm("113838", "DLP"), dlp, ucum("mGy.cm")),
    )
    return container(
        "CONTAINS",
        dcm("113819", "CT Acquisition"),
        text_item("CONTAINS", dcm("125203", "Acquisition Protocol"), protocol),
        code_item("CONTAINS", dcm("123014", "Target Region"), code("51185008", "SCT", "Chest")),
        code_item("CONTAINS", dcm("113820", "CT Acquisition Type"), acquisition_type),
        content_item("CONTAINS", "UIDREF", dcm("113769", "Irradiation Event UID"), UID=generate_uid(prefix=ROOT)),
        parameters,
        dose,
    )


def make_ct_dose_sr(images: list[Dataset]) -> Dataset:
    """An X-Ray Radiation Dose SR (TID 10011 CT Radiation Dose) for the CT study of `images`: a
    scout and a helical chest acquisition, CTDIvol and DLP under the French reference levels
    (thorax: 9 mGy, 350 mGy.cm); the total DLP is the sum of the two acquisitions'."""
    dataset = sr_document(images, XRAY_RADIATION_DOSE_SR, "Rapport de dose")
    study_date = str(images[0].StudyDate)
    scope = code_item("HAS OBS CONTEXT", dcm("113705", "Scope of Accumulation"), dcm("113014", "Study"))
    study_uid = images[0].StudyInstanceUID
    scope.ContentSequence = [
        content_item("HAS PROPERTIES", "UIDREF", dcm("110180", "Study Instance UID"), UID=study_uid)
    ]
    events = numeric("CONTAINS", dcm("113812", "Total Number of Irradiation Events"), "2", ucum("{events}", "events"))
    total = numeric("CONTAINS", dcm("113813", "CT Dose Length Product Total"), "318.9", ucum("mGy.cm"))
    scout = ct_acquisition("Topogramme", dcm("113805", "Constant Angle Acquisition"), "2.6", "512", "35", "0.13", "6.7")
    helical = code("116152004", "SCT", "Spiral Acquisition")
    report = container(
        "",
        dcm("113701", "X-Ray Radiation Dose Report"),
        code_item(
            "HAS CONCEPT MOD", dcm("121058", "Procedure reported"), code("77477000", "SCT", "Computed Tomography")
        ),
        code_item("HAS OBS CONTEXT", dcm("121005", "Observer Type"), dcm("121007", "Device")),
        content_item("HAS OBS CONTEXT", "UIDREF", dcm("121012", "Device Observer UID"), UID=generate_uid(prefix=ROOT)),
        text_item("HAS OBS CONTEXT", dcm("121013", "Device Observer Name"), "SCANNER1"),
        text_item("HAS OBS CONTEXT", dcm("121014", "Device Observer Manufacturer"), "Synthetic"),
        content_item(
            "HAS OBS CONTEXT", "DATETIME", dcm("113809", "Start of X-Ray Irradiation"), DateTime=f"{study_date}101602"
        ),
        content_item(
            "HAS OBS CONTEXT", "DATETIME", dcm("113810", "End of X-Ray Irradiation"), DateTime=f"{study_date}101731"
        ),
        scope,
        container("CONTAINS", dcm("113811", "CT Accumulated Dose Data"), events, total),
        scout,
        ct_acquisition("Thorax standard", helical, "4.8", "392", "180", "7.92", "312.2"),
        code_item("CONTAINS", dcm("113854", "Source of Dose Information"), dcm("113856", "Automated Data Collection")),
    )
    dataset.update(report)
    dataset.ContentTemplateSequence = [template("10011")]
    return dataset


def make_key_object_selection(images: list[Dataset]) -> Dataset:
    """A Key Object Selection document (TID 2010, 'Of Interest') flagging `images` in their study."""
    dataset = new_object_in_study(images, KEY_OBJECT_SELECTION, "KO", 901, "Images clés")
    dataset.CurrentRequestedProcedureEvidenceSequence = evidence(images)
    description = "Nodule du lobe supérieur droit, coupes de référence pour le suivi."
    selection = container(
        "",
        dcm("113000", "Of Interest"),
        text_item("CONTAINS", dcm("113012", "Key Object Description"), description),
        *[image_item("CONTAINS", None, image) for image in images],  # TID 2010: no concept name
    )
    dataset.update(selection)
    dataset.ContentTemplateSequence = [template("2010")]
    return dataset


def make_presentation_state(images: list[Dataset]) -> Dataset:
    """A Grayscale Softcopy Presentation State on the CT `images`: lung window, an annotation circling
    a nodule, scale to fit."""
    dataset = new_object_in_study(images, GRAYSCALE_PRESENTATION_STATE, "PR", 902, "Fenêtre pulmonaire")
    dataset.ContentLabel = "NODULE_LSD"
    dataset.ContentDescription = "Nodule lobe supérieur droit"
    dataset.ContentCreatorName = OBSERVER
    dataset.PresentationCreationDate = dataset.ContentDate
    dataset.PresentationCreationTime = dataset.ContentTime
    series = Dataset()
    series.SeriesInstanceUID = images[0].SeriesInstanceUID
    series.ReferencedImageSequence = [sop_reference(image) for image in images]
    dataset.ReferencedSeriesSequence = [series]
    area = Dataset()
    area.DisplayedAreaTopLeftHandCorner = [1, 1]
    area.DisplayedAreaBottomRightHandCorner = [int(images[0].Columns), int(images[0].Rows)]
    area.PresentationSizeMode = "SCALE TO FIT"
    area.PresentationPixelSpacing = list(images[0].PixelSpacing)
    dataset.DisplayedAreaSelectionSequence = [area]
    layer = Dataset()
    layer.GraphicLayer = "ANNOTATIONS"
    layer.GraphicLayerOrder = 1
    layer.GraphicLayerDescription = "Annotations du radiologue"
    dataset.GraphicLayerSequence = [layer]
    dataset.GraphicAnnotationSequence = [nodule_annotation(images[-1])]
    dataset.ImageRotation = 0
    dataset.ImageHorizontalFlip = "N"
    dataset.RescaleIntercept = images[0].RescaleIntercept
    dataset.RescaleSlope = images[0].RescaleSlope
    dataset.RescaleType = "HU"
    window = Dataset()
    window.WindowCenter = -600
    window.WindowWidth = 1500
    window.WindowCenterWidthExplanation = "POUMON"
    dataset.SoftcopyVOILUTSequence = [window]
    dataset.PresentationLUTShape = "IDENTITY"
    return dataset


def nodule_annotation(image: Dataset) -> Dataset:
    """A circle and a label on `image` (PS3.3 C.10.5), in pixel coordinates."""
    circle = Dataset()
    circle.GraphicAnnotationUnits = "PIXEL"
    circle.GraphicDimensions = 2
    circle.NumberOfGraphicPoints = 2
    circle.GraphicData = [300.0, 200.0, 312.0, 200.0]  # centre, then a point on the circle
    circle.GraphicType = "CIRCLE"
    circle.GraphicFilled = "N"
    label = Dataset()
    label.AnchorPointAnnotationUnits = "PIXEL"
    label.UnformattedTextValue = "Nodule 8 mm"
    label.AnchorPoint = [300.0, 186.0]
    label.AnchorPointVisibility = "Y"
    annotation = Dataset()
    annotation.ReferencedImageSequence = [sop_reference(image)]
    annotation.GraphicLayer = "ANNOTATIONS"
    annotation.GraphicObjectSequence = [circle]
    annotation.TextObjectSequence = [label]
    return annotation


def make_secondary_capture(patient: Patient = PATIENTS[2], study_uid: str | None = None) -> Dataset:
    """A Secondary Capture: an RGB screenshot of a workstation's 3D rendering (PS3.3 A.8.1)."""
    capture = Modality("OT", SECONDARY_CAPTURE, 384, 512, 8, False, samples=3)
    dataset = make_instance("MR", patient, study_uid, accession_number="ACC0301")  # header only: pixels replaced
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID = SECONDARY_CAPTURE
    dataset.Modality = "OT"
    dataset.StudyDescription = "IRM du genou"
    dataset.SeriesNumber = 300
    dataset.SeriesDescription = "Reconstruction 3D (capture)"
    dataset.ImageType = ["DERIVED", "SECONDARY"]
    dataset.ConversionType = "WSD"
    dataset.SecondaryCaptureDeviceManufacturer = "Synthetic"
    dataset.DateOfSecondaryCapture = dataset.StudyDate
    dataset.TimeOfSecondaryCapture = "104411"
    dataset.PatientOrientation = ""
    dataset.BurnedInAnnotation = "YES"
    add_pixels(dataset, capture, seed=7)
    return dataset


def make_mammography_for_processing(patient: Patient = PATIENTS[0], laterality: str = "L") -> Dataset:
    """A Digital Mammography X-Ray Image - For Processing (PS3.3 A.27): raw detector data of one
    cranio-caudal view, as a screening unit sends it to CAD."""
    dataset = make_instance("MG", patient, accession_number="ACC0501")
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID = MAMMOGRAPHY_FOR_PROCESSING
    dataset.StudyDescription = "Mammographie de dépistage"
    dataset.SeriesDescription = f"{laterality} CC brute"
    dataset.BodyPartExamined = "BREAST"
    dataset.PresentationIntentType = "FOR PROCESSING"
    dataset.ImageType = ["ORIGINAL", "PRIMARY"]
    dataset.ImageLaterality = laterality
    dataset.ViewPosition = "CC"
    dataset.ViewCodeSequence = [code("399162004", "SCT", "cranio-caudal")]
    dataset.AnatomicRegionSequence = [code("76752008", "SCT", "Breast")]
    dataset.PatientOrientation = ["P", "L" if laterality == "R" else "R"]
    dataset.BreastImplantPresent = "NO"
    dataset.PartialView = "NO"
    dataset.DetectorType = "DIRECT"
    dataset.ImagerPixelSpacing = [0.07, 0.07]
    dataset.PixelIntensityRelationship = "LIN"
    dataset.PixelIntensityRelationshipSign = 1
    dataset.RescaleIntercept, dataset.RescaleSlope, dataset.RescaleType = 0, 1, "US"
    dataset.BurnedInAnnotation = "NO"
    dataset.PresentationLUTShape = "IDENTITY"
    dataset.QualityControlImage = "NO"
    dataset.PositionerType = "MAMMOGRAPHIC"
    dataset.DistanceSourceToDetector, dataset.DistanceSourceToPatient = 660, 640
    dataset.BodyPartThickness, dataset.CompressionForce = 52, 98
    dataset.KVP, dataset.Exposure = 29, 82
    dataset.AnodeTargetMaterial, dataset.FilterMaterial = "TUNGSTEN", "RHODIUM"
    dataset.OrganDose, dataset.EntranceDoseInmGy = 1.21, 4.6
    return dataset


def compressed_as(dataset: Dataset, transfer_syntax: UID) -> Dataset:
    """A copy of `dataset` (same SOP Instance UID) as a modality would send it already encoded in
    `transfer_syntax`: a lossless one of LOSSLESS_PLUGINS, or Deflated Explicit VR Little Endian."""
    copy = deepcopy(dataset)
    if transfer_syntax == DeflatedExplicitVRLittleEndian:
        copy.file_meta.TransferSyntaxUID = transfer_syntax
        return copy
    plugin = LOSSLESS_PLUGINS[transfer_syntax]
    copy.compress(transfer_syntax, generate_instance_uid=False, **({"encoding_plugin": plugin} if plugin else {}))
    return copy


def jpeg_baseline(dataset: Dataset, directory: Path) -> Path:
    """`dataset` (8 bits) encoded as a modality sending JPEG Baseline would: lossy, flagged so in
    the header (Lossy Image Compression 01), same SOP Instance UID. The bitstream comes from DCMTK's
    `dcmcjpeg` (no JPEG encoder in pydicom's plugins); the file written is returned."""
    directory.mkdir(parents=True, exist_ok=True)
    source, encoded_path = directory / "uncompressed.dcm", directory / "jpeg-baseline.dcm"
    dataset.save_as(source, enforce_file_format=True)
    subprocess.run(["dcmcjpeg", "+eb", "+un", str(source), str(encoded_path)], check=True, capture_output=True)
    modality_output = dcmread(encoded_path)
    # dcmcjpeg marks its output as derived by itself; a modality compressing its own images does not.
    modality_output.ImageType = ["ORIGINAL", "PRIMARY"]
    for keyword in ("DerivationDescription", "DerivationCodeSequence"):
        if keyword in modality_output:
            delattr(modality_output, keyword)
    modality_output.save_as(encoded_path, enforce_file_format=True)
    return encoded_path
