"""Synthetic DICOM objects for tests and benchmarks: realistic headers, body-like noisy pixels.

Nothing here comes from a real patient. Names are French on purpose (accents, Œ) and the character
set is chosen per object (ISO_IR 100 or ISO_IR 192).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalMammographyXRayImageStorageForPresentation,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    MRImageStorage,
    UltrasoundMultiFrameImageStorage,
    generate_uid,
)

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
