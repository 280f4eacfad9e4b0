"""Lossy copies of images for the deferred tier (R1, `tiers.lossy`, off by default): annex 5 of the
NGAP admits "une compression plus importante (DICOM lossy)" once the years of immediate access are
over. `archive.tiers` calls this for each image of a study it moves, and only when the
configuration allows it; the main storage never holds an image made lossy here.

A lossy copy is what PS3.3 C.7.6.1.1.5 says a lossy compressed version of another image is:
- Lossy Image Compression (0028,2110) "01", and its ratio (0028,2112) and method (0028,2114) added
  to those already there (multi-valued, one per lossy step, in order);
- Value 1 of Image Type (0008,0008) DERIVED, and a new SOP Instance UID (the predecessor was a DICOM
  image), the original referenced in Source Image Sequence (0008,2112) with the purpose of reference
  121320 "Uncompressed predecessor" (CID 7202), Derivation Code Sequence 113040 "Lossy Compression"
  (CID 7203) and the approximate ratio in Derivation Description (0008,2111).

Never made lossy: objects without Pixel Data (SR, key object selection, encapsulated PDF, presentation
states), images already lossy (received so, or once made so: the losses would compound), palette
and YCbCr colour, and what the encoder refuses. Those move bit-exact, as when the switch is off.

The copy is checked before it is used: it must decode, to the same rows, columns, frames and samples
(and, for JPEG-LS near-lossless, no pixel further than `maximum_error` from the original's).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import JPEG2000, UID, JPEGLSNearLossless, generate_uid

from appliance.archive.attributes import is_lossy
from appliance.config import TiersConfig

JPEG_2000 = "jpeg-2000"
JPEG_LS_NEAR_LOSSLESS = "jpeg-ls-near-lossless"
SYNTAXES = {JPEG_2000: JPEG2000, JPEG_LS_NEAR_LOSSLESS: JPEGLSNearLossless}
PLUGINS = {JPEG_2000: "pylibjpeg", JPEG_LS_NEAR_LOSSLESS: "pyjpegls"}
METHODS = {JPEG_2000: "ISO_15444_1", JPEG_LS_NEAR_LOSSLESS: "ISO_14495_1"}  # PS3.3 C.7.6.1.1.5.1 defined terms
UNCOMPRESSED_PREDECESSOR = ("121320", "DCM", "Uncompressed predecessor")  # CID 7202
LOSSY_COMPRESSION = ("113040", "DCM", "Lossy Compression")  # CID 7203
COLOURS = {"MONOCHROME1", "MONOCHROME2", "RGB"}
DESCRIPTION_LENGTH = 1024  # ST


class NotMadeLossy(Exception):
    """The object stays as it is (no pixels, already lossy, a kind the codec does not take)."""


class LossyCopyRefused(Exception):
    """The lossy copy did not decode to the original's geometry: the original is kept as it is."""


@dataclass(frozen=True)
class LossyPolicy:
    """How images are made lossy in the deferred tier."""

    codec: str
    compression_ratio: int
    maximum_error: int

    @classmethod
    def of(cls, tiers: TiersConfig) -> LossyPolicy | None:
        """The configured policy, None when lossy compression is off (the default)."""
        lossy = tiers.lossy
        return cls(lossy.codec, lossy.compression_ratio, lossy.maximum_error) if lossy.enabled else None

    def options(self) -> dict[str, Any]:
        """The encoder's quality options (pydicom's names)."""
        if self.codec == JPEG_2000:
            return {"j2k_cr": [self.compression_ratio]}
        return {"jls_error": self.maximum_error}


@dataclass(frozen=True)
class LossyCopy:
    encoded: bytes
    sop_instance_uid: str
    transfer_syntax_uid: str
    ratio: float


def lossy_copy(encoded: bytes, source_sop_instance_uid: str, policy: LossyPolicy) -> LossyCopy:
    """The lossy copy of the DICOM file `encoded`, checked.

    Raises NotMadeLossy (keep the original as it is) or LossyCopyRefused (the copy failed its check).
    """
    dataset = dcmread(io.BytesIO(encoded))
    check_candidate(dataset)
    try:
        original = dataset.pixel_array.copy()
        dataset.compress(SYNTAXES[policy.codec], original, encoding_plugin=PLUGINS[policy.codec],
                         generate_instance_uid=False, **policy.options())  # fmt: skip
    except (ValueError, RuntimeError, NotImplementedError, TypeError, AttributeError, KeyError) as error:
        raise NotMadeLossy(f"the encoder refused the pixels: {error}") from error
    ratio = original.nbytes / max(1, len(dataset.PixelData))
    new_uid = str(generate_uid())
    mark_lossy(dataset, source_sop_instance_uid, new_uid, METHODS[policy.codec], ratio)
    output = io.BytesIO()
    dataset.save_as(output, enforce_file_format=True)
    result = output.getvalue()
    verify(result, original, new_uid, policy)
    return LossyCopy(result, new_uid, str(SYNTAXES[policy.codec]), ratio)


def check_candidate(dataset: Dataset) -> None:
    """Raises NotMadeLossy unless the object is an image the lossy codecs may take."""
    if "PixelData" not in dataset:
        raise NotMadeLossy("no pixel data (not an image)")
    if is_lossy(dataset, str(dataset.file_meta.get("TransferSyntaxUID", ""))):
        raise NotMadeLossy("already lossy")
    if int(dataset.get("BitsAllocated", 0) or 0) not in (8, 16):
        raise NotMadeLossy("neither 8 nor 16 bits allocated")
    if str(dataset.get("PhotometricInterpretation", "")) not in COLOURS:
        raise NotMadeLossy(f"photometric interpretation {dataset.get('PhotometricInterpretation', '')} kept")


def mark_lossy(dataset: Dataset, source_uid: str, new_uid: str, method: str, ratio: float) -> None:
    """Set what PS3.3 C.7.6.1.1.5 asks of a lossy compressed version of another image."""
    dataset.LossyImageCompression = "01"
    dataset.LossyImageCompressionRatio = [*values(dataset, "LossyImageCompressionRatio"), f"{ratio:.2f}"[:16]]
    dataset.LossyImageCompressionMethod = [*values(dataset, "LossyImageCompressionMethod"), method]
    if "ImageType" in dataset and dataset.ImageType:
        dataset.ImageType = ["DERIVED", *list(values(dataset, "ImageType"))[1:]]
    sources = list(dataset.get("SourceImageSequence", Sequence()))
    sources.append(reference(str(dataset.SOPClassUID), source_uid))
    dataset.SourceImageSequence = Sequence(sources)
    derivations = list(dataset.get("DerivationCodeSequence", Sequence()))
    dataset.DerivationCodeSequence = Sequence([*derivations, code(LOSSY_COMPRESSION)])
    described = f"Lossy compression {method}, ratio {ratio:.1f}:1 (deferred storage tier)"
    earlier = str(dataset.get("DerivationDescription", "") or "")
    dataset.DerivationDescription = (f"{earlier}; {described}" if earlier else described)[:DESCRIPTION_LENGTH]
    dataset.SOPInstanceUID = new_uid
    dataset.file_meta.MediaStorageSOPInstanceUID = UID(new_uid)


def values(dataset: Dataset, keyword: str) -> list[str]:
    """An element's values as a list of strings (none when absent or empty)."""
    value = dataset.get(keyword)
    if value is None or value == "":
        return []
    if isinstance(value, str | float | int):
        return [str(value)]
    return [str(item) for item in value]


def reference(sop_class_uid: str, sop_instance_uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class_uid
    item.ReferencedSOPInstanceUID = sop_instance_uid
    item.PurposeOfReferenceCodeSequence = Sequence([code(UNCOMPRESSED_PREDECESSOR)])
    return item


def code(triple: tuple[str, str, str]) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = triple
    return item


def verify(encoded: bytes, original: np.ndarray, new_uid: str, policy: LossyPolicy) -> None:
    """Raises LossyCopyRefused unless the copy decodes to the original's geometry under its new UID."""
    try:
        copy = dcmread(io.BytesIO(encoded))
        decoded = copy.pixel_array
    except Exception as error:  # any decoder failure means the copy is unusable
        raise LossyCopyRefused(f"the lossy copy does not decode: {type(error).__name__}: {error}") from error
    if decoded.shape != original.shape or str(copy.SOPInstanceUID) != new_uid:
        raise LossyCopyRefused(f"the lossy copy decodes to {decoded.shape}, not {original.shape}")
    if policy.codec == JPEG_LS_NEAR_LOSSLESS:
        worst = int(np.max(np.abs(decoded.astype(np.int64) - original.astype(np.int64)), initial=0))
        if worst > policy.maximum_error:
            raise LossyCopyRefused(f"a pixel is {worst} off, more than {policy.maximum_error}")
