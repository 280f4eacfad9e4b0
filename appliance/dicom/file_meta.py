"""The DICOM file of a received C-STORE: preamble, File Meta Information and the data set as sent.

pynetdicom's `Event.encoded_dataset()` builds the File Meta Information as a pydicom dataset and
encodes it with pydicom's writer: about a fifth of the archive's Python time per stored image
(issue 14). The group holds seven elements of known VRs, so it is written here directly, byte for
byte as pynetdicom writes it (a unit test compares both): the digests of objects received before
and after stay comparable (the duplicate policy of `archive.ingest` compares bytes).
"""

from __future__ import annotations

import struct
from typing import Any

from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION
from pynetdicom.events import Event

PREAMBLE = b"\x00" * 128 + b"DICM"
VERSION = struct.pack("<HH2sHI", 0x0002, 0x0001, b"OB", 0, 2) + b"\x00\x01"


def short_element(element: int, vr: bytes, value: bytes) -> bytes:
    """An explicit VR little endian element of group 0002 with a 2-byte length."""
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def uid_value(uid: str) -> bytes:
    """A UI value, padded with NUL to an even length."""
    value = uid.encode("ascii")
    return value + b"\x00" if len(value) % 2 else value


def text_value(text: str) -> bytes:
    """An SH value, padded with a space to an even length."""
    value = text.encode("ascii")
    return value + b" " if len(value) % 2 else value


IMPLEMENTATION = short_element(0x0012, b"UI", uid_value(str(PYNETDICOM_IMPLEMENTATION_UID))) + short_element(
    0x0013, b"SH", text_value(PYNETDICOM_IMPLEMENTATION_VERSION)
)


def file_meta(sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str) -> bytes:
    """The File Meta Information group (with its group length) of a received object.

    Raises UnicodeEncodeError for a UID that is not ASCII (the caller lets pynetdicom write it).
    """
    elements = b"".join(
        (
            VERSION,
            short_element(0x0002, b"UI", uid_value(sop_class_uid)),
            short_element(0x0003, b"UI", uid_value(sop_instance_uid)),
            short_element(0x0010, b"UI", uid_value(transfer_syntax_uid)),
            IMPLEMENTATION,
        )
    )
    return struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(elements)) + elements


def received_file(event: Event) -> bytes:
    """The DICOM file of a C-STORE event's data set, built in one join (one copy of the data set)."""
    request: Any = event.request
    try:
        meta = file_meta(
            str(request.AffectedSOPClassUID), str(request.AffectedSOPInstanceUID), str(event.context.transfer_syntax)
        )
    except UnicodeEncodeError:
        encoded: bytes = event.encoded_dataset()
        return encoded
    return b"".join((PREAMBLE, meta, request.DataSet.getbuffer()))
