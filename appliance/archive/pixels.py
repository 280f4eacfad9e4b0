"""Pixels as they leave the archive without their header: frames (DICOMweb's frame retrieval and
BulkDataURIs) and rendered images (JPEG or PNG for thumbnails, WADO-URI, `/rendered`).

Frames follow the retrieve rule of `archive.retrieve` (`choose_syntax`, `encode_in`): the stored
bitstream of each frame when the receiver accepts the stored syntax, else the frame decoded (or
re-encoded losslessly in a syntax it asked for). No identity travels with pixels, so there is
nothing to coerce. Rendering decodes the one frame asked for (JPEG-LS with CharLS, the fast one),
applies the rescale and a window (the query's, else the object's, else the pixels' range) and
encodes the result; about 2 ms for a 512 x 512 CT frame.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames

from appliance.archive.retrieve import PREFERRED_DECODERS, CannotSend, choose_syntax, encode_in

JPEG = "image/jpeg"
PNG = "image/png"
RENDERED_TYPES = (JPEG, PNG)


class NoSuchFrame(Exception):
    """A frame number outside 1..NumberOfFrames, or an object without pixel data."""


@dataclass(frozen=True)
class Frame:
    """One frame's bytes and the transfer syntax they are encoded in."""

    data: bytes
    transfer_syntax_uid: str


@dataclass(frozen=True)
class Window:
    """A VOI window (PS3.3 C.11.2.1.2): centre and width in rescaled units."""

    center: float
    width: float


@dataclass(frozen=True)
class Rendering:
    """How to render: the media type, a window (None: the object's own), the largest size in pixels
    (rows, columns; None: as stored) and the JPEG quality."""

    media_type: str = JPEG
    window: Window | None = None
    size: tuple[int, int] | None = None
    quality: int = 90


def frames(path: Path, numbers: Sequence[int], accepted: Sequence[str]) -> list[Frame]:
    """Frames `numbers` (1-based) of the object stored at `path`, for a receiver accepting the
    transfer syntaxes `accepted` (its preference first).

    Raises NoSuchFrame, CannotSend, or OSError when the file cannot be read.
    """
    dataset: Dataset = dcmread(path)
    if "PixelData" not in dataset:
        raise NoSuchFrame("the object has no pixel data")
    count = int(dataset.get("NumberOfFrames", 1) or 1)
    wrong = [number for number in numbers if not 1 <= number <= count]
    if wrong:
        raise NoSuchFrame(f"frame {wrong[0]} asked, the object has {count}")
    stored = str(dataset.file_meta.TransferSyntaxUID)
    target = choose_syntax(stored, accepted)
    if target != stored:
        dataset = encode_in(dataset, target)
    syntax = str(dataset.file_meta.TransferSyntaxUID)
    if dataset.file_meta.TransferSyntaxUID.is_encapsulated:
        every = list(generate_frames(dataset.PixelData, number_of_frames=count))
        return [Frame(every[number - 1], syntax) for number in numbers]
    size = native_frame_size(dataset)
    pixels = dataset.PixelData
    return [Frame(bytes(pixels[(number - 1) * size : number * size]), target) for number in numbers]


def native_frame_size(dataset: Dataset) -> int:
    """Bytes of one uncompressed frame (PS3.5 8.1.1)."""
    bits = int(dataset.Rows) * int(dataset.Columns) * int(dataset.get("SamplesPerPixel", 1) or 1)
    return (bits * int(dataset.BitsAllocated) + 7) // 8


def render(path: Path, number: int, rendering: Rendering) -> bytes:
    """Frame `number` (1-based) of the object at `path` as a JPEG or PNG image.

    Raises NoSuchFrame, CannotSend (a media type other than JPEG or PNG, pixels it cannot decode),
    or OSError when the file cannot be read.
    """
    if rendering.media_type not in RENDERED_TYPES:
        raise CannotSend(f"cannot render as {rendering.media_type}")
    dataset = dcmread(path)
    if "PixelData" not in dataset:
        raise NoSuchFrame("the object has no pixel data")
    count = int(dataset.get("NumberOfFrames", 1) or 1)
    if not 1 <= number <= count:
        raise NoSuchFrame(f"frame {number} asked, the object has {count}")
    syntax = str(dataset.file_meta.TransferSyntaxUID)
    try:
        dataset.pixel_array_options(index=number - 1, decoding_plugin=PREFERRED_DECODERS.get(syntax, ""))
        pixels = dataset.pixel_array
    except (ValueError, RuntimeError, NotImplementedError) as error:
        raise CannotSend(f"cannot decode the pixels: {error}") from error
    image = to_image(dataset, pixels, rendering.window)
    if rendering.size is not None:
        image.thumbnail((rendering.size[1], rendering.size[0]))
    output = io.BytesIO()
    if rendering.media_type == PNG:
        image.save(output, format="PNG", compress_level=1)
    else:
        image.save(output, format="JPEG", quality=rendering.quality)
    return output.getvalue()


def to_image(dataset: Dataset, pixels: np.ndarray, window: Window | None) -> Image.Image:
    """8-bit grey (windowed) or RGB image of one decoded frame."""
    if pixels.ndim == 3 and pixels.shape[-1] == 3:
        return Image.fromarray(scaled_colour(pixels), "RGB")
    values = pixels.astype(np.float32)
    slope = float(dataset.get("RescaleSlope", 1) or 1)
    intercept = float(dataset.get("RescaleIntercept", 0) or 0)
    if slope != 1 or intercept != 0:
        values = values * slope + intercept
    chosen = window or window_of(dataset) or Window(*range_window(values))
    grey = windowed(values, chosen)
    if str(dataset.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        grey = 255 - grey
    return Image.fromarray(grey, "L")


def windowed(values: np.ndarray, window: Window) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 linear window, to 0..255."""
    width = max(window.width, 1.0)
    low = window.center - 0.5 - (width - 1) / 2
    scaled = (values - low) * (255.0 / max(width - 1, 1.0))
    result: np.ndarray = np.clip(scaled, 0, 255).astype(np.uint8)
    return result


def window_of(dataset: Dataset) -> Window | None:
    """The object's first window (Window Center / Width, PS3.3 C.11.2), if it has one."""
    center, width = dataset.get("WindowCenter"), dataset.get("WindowWidth")
    if center is None or width is None:
        return None
    try:
        first_center = center[0] if isinstance(center, Sequence) else center
        first_width = width[0] if isinstance(width, Sequence) else width
        return Window(float(first_center), float(first_width))
    except (TypeError, ValueError, IndexError):
        return None


def range_window(values: np.ndarray) -> tuple[float, float]:
    low, high = float(values.min()), float(values.max())
    return (low + high) / 2, max(high - low, 1.0)


def scaled_colour(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    top = float(pixels.max()) or 1.0
    result: np.ndarray = (pixels.astype(np.float32) * (255.0 / top)).astype(np.uint8)
    return result
