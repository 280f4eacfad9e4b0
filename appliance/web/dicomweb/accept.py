"""Accept headers as real DICOMweb clients send them (PS3.18 8.7), and the media types of frames.

Clients differ in spelling more than in meaning: dicomweb-client quotes the `type` parameter and
puts spaces after the semicolons, Weasis sends `multipart/related;type="application/dicom";
transfer-syntax=*` without spaces, OHIF may leave `type` unquoted, and `type="*/*"` asks for
anything. All are read the same way here. `transfer-syntax=*` means as stored; no `transfer-syntax`
means the default of the media type (Explicit VR Little Endian for DICOM objects and uncompressed
frames, PS3.18 8.7.3.5.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydicom.uid import (
    JPEG2000,
    JPEG2000MC,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEG2000MCLossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

AS_STORED = "*"
DICOM = "application/dicom"
OCTET_STREAM = "application/octet-stream"
MULTIPART_RELATED = "multipart/related"
DICOM_JSON = "application/dicom+json"
WILDCARDS = ("*/*", "multipart/*")
UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian)

# PS3.18 Table 8.7.3-5: the media type of a frame's bytes in each transfer syntax (first = default).
FRAME_MEDIA_TYPES: dict[str, tuple[str, ...]] = {
    OCTET_STREAM: (ExplicitVRLittleEndian, ImplicitVRLittleEndian),
    "image/jls": (JPEGLSLossless, JPEGLSNearLossless),
    "image/jp2": (JPEG2000Lossless, JPEG2000),
    "image/jpx": (JPEG2000MCLossless, JPEG2000MC),
    "image/jpeg": (JPEGLosslessSV1, JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless),
    "image/dicom-rle": (RLELossless,),
    "image/x-dicom-rle": (RLELossless,),
}


@dataclass(frozen=True)
class MediaRange:
    """One media range of an Accept header: `type/subtype` in lower case, its parameters (names in
    lower case, values unquoted) and its quality."""

    media_type: str
    parameters: dict[str, str] = field(default_factory=dict)
    quality: float = 1.0


def split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for character in text:
        if character == '"':
            quoted = not quoted
        if character == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(character)
    parts.append("".join(current))
    return parts


def parse_media_type(text: str) -> MediaRange:
    """`type/subtype; name=value; name="value"` (a Content-Type or one Accept range)."""
    pieces = split_outside_quotes(text, ";")
    parameters: dict[str, str] = {}
    for piece in pieces[1:]:
        name, _, value = piece.partition("=")
        if name.strip():
            parameters[name.strip().lower()] = value.strip().strip('"').strip()
    quality = 1.0
    if "q" in parameters:
        try:
            quality = float(parameters.pop("q"))
        except ValueError:
            quality = 0.0
    return MediaRange(pieces[0].strip().lower(), parameters, quality)


def parse_accept(header: str | None) -> list[MediaRange]:
    """The ranges of an Accept header, the preferred first (an absent header accepts anything)."""
    ranges = [parse_media_type(part) for part in split_outside_quotes(header or "", ",") if part.strip()]
    ranges = [found for found in ranges if found.quality > 0]
    if not header or not header.strip():
        return [MediaRange("*/*")]
    return sorted(ranges, key=lambda found: -found.quality)


def part_type(found: MediaRange, default: str) -> str | None:
    """The media type asked for inside a multipart response, or the range's own for a single part."""
    if found.media_type == MULTIPART_RELATED:
        return found.parameters.get("type", default).lower()
    if found.media_type in WILDCARDS:
        return found.parameters.get("type", "*/*").lower()
    return found.media_type


def dicom_syntaxes(header: str | None) -> list[str]:
    """The transfer syntaxes acceptable for DICOM objects (`application/dicom` parts), preferred
    first, AS_STORED for `transfer-syntax=*`; empty when the header allows no DICOM object."""
    syntaxes: list[str] = []
    for found in parse_accept(header):
        inner = part_type(found, DICOM)
        if inner not in (DICOM, "application/*", "*/*"):
            continue
        syntaxes.append(found.parameters.get("transfer-syntax", ExplicitVRLittleEndian))
    return syntaxes


def frame_syntaxes(header: str | None) -> list[str]:
    """The transfer syntaxes acceptable for frames and bulk data, preferred first; AS_STORED when
    anything is (`type="*/*"`, `transfer-syntax=*`); empty when none can be."""
    syntaxes: list[str] = []
    for found in parse_accept(header):
        inner = part_type(found, OCTET_STREAM)
        asked = found.parameters.get("transfer-syntax")
        if inner in ("*/*", "image/*", "application/*") or (inner is not None and inner.endswith("/*")):
            syntaxes.append(AS_STORED if asked in (None, AS_STORED) else asked)
        elif inner in FRAME_MEDIA_TYPES:
            allowed = FRAME_MEDIA_TYPES[inner]
            if asked == AS_STORED or (asked is None and inner != OCTET_STREAM):
                syntaxes.extend(allowed)
            elif asked is None or asked in allowed:
                syntaxes.append(asked or allowed[0])
    return syntaxes


def frame_media_type(transfer_syntax_uid: str) -> str:
    """The media type of a frame encoded in `transfer_syntax_uid` (octet-stream when uncompressed)."""
    if transfer_syntax_uid in UNCOMPRESSED:
        return OCTET_STREAM
    for media_type, syntaxes in FRAME_MEDIA_TYPES.items():
        if transfer_syntax_uid in syntaxes:
            return media_type
    return OCTET_STREAM


def resolved(syntaxes: list[str], stored: str) -> list[str]:
    """`syntaxes` with AS_STORED replaced by the stored syntax of one object."""
    return [stored if syntax == AS_STORED else syntax for syntax in syntaxes]


def rendered_type(header: str | None, default: str = "image/jpeg") -> str | None:
    """JPEG or PNG, as the Accept header prefers; None when it accepts neither."""
    for found in parse_accept(header):
        if found.media_type in ("image/jpeg", "image/png"):
            return found.media_type
        if found.media_type in ("*/*", "image/*"):
            return default
    return None


def accepts_json(header: str | None) -> bool:
    """Whether DICOM JSON (or plain JSON) is acceptable."""
    wanted = (DICOM_JSON, "application/json", "application/*", "*/*")
    return any(found.media_type in wanted for found in parse_accept(header))
