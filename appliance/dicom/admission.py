"""What a new DICOM connection may send before it is an association, read with bounds (A6, S2).

Before pynetdicom sees a byte, the guarded server (`guarded_server.py`) reads the A-ASSOCIATE-RQ
itself, in three bounded steps: the PDU header (6 bytes), the fixed part (68 bytes: the called and
calling AE titles, PS3.8 9.3.2), then, only for a peer the access policy admits, the rest of the
request, at most `MAXIMUM_REQUEST_BYTES`. Whatever is not a well-formed association request gets its
answer here at once, and the connection is closed:

- another PDU type, or an unknown one: A-ABORT (service provider, unexpected / unrecognised PDU);
- a calling AE title that is blank or not a configured peer's: A-ASSOCIATE-RJ permanent, service
  user, calling AE title not recognised (1/1/3);
- a request larger than `MAXIMUM_REQUEST_BYTES`, or one pynetdicom could not decode (bad item
  lengths, an even presentation context ID): A-ABORT (service provider, invalid PDU parameter value).

A request that passes is handed to pynetdicom decoded (`CheckedRequest`): decoding it again took as
long as the first time. Decoding is kept too (`decoded`, the last `DECODED_REQUESTS` distinct
requests): a peer sends the very same bytes on each association, and pynetdicom took 5 to 14 ms in
the daemon to decode DCMTK getscu's 121 storage contexts and make them a primitive, the largest part
of the time to the first image of a C-GET. The decoded primitive is shared by the associations of
the same bytes: pynetdicom only reads a requestor's primitive (its `ServiceUser` is read-only once
given one), and so does the archive.

This module only reads bytes and decides; the only state it keeps is that cache, and it does not log.
"""

from __future__ import annotations

import copy
import functools
import struct
from dataclasses import dataclass

from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import A_ASSOCIATE

from appliance.dicom import statuses

HEADER_BYTES = 6
FIXED_PART_BYTES = 68  # protocol version, reserved, called AE, calling AE, 32 reserved (PS3.8 9.3.2)
MAXIMUM_REQUEST_BYTES = 256 * 1024  # 128 contexts of 30 transfer syntaxes each fit in it
DECODED_REQUESTS = 32  # distinct requests kept decoded: a practice's peers send a handful each
ASSOCIATE_RQ, ASSOCIATE_RJ, ABORT = 0x01, 0x03, 0x07
KNOWN_PDU_TYPES = frozenset(range(0x01, 0x08))

# A-ABORT source and reason (PS3.8 9.3.8).
SERVICE_PROVIDER = 0x02
UNRECOGNIZED_PDU = 0x01
UNEXPECTED_PDU = 0x02
INVALID_PARAMETER_VALUE = 0x06

# A-ASSOCIATE-RJ (PS3.8 9.3.4): result, source, reason.
REJECTED_TRANSIENT = 0x02
SOURCE_PRESENTATION = 0x03
REASON_LOCAL_LIMIT_EXCEEDED = 0x02


@dataclass(frozen=True)
class Answer:
    """The PDU to send before closing (None: close without a word) and why, for the log."""

    pdu: bytes | None
    reason: str


def associate_reject(result: int, source: int, reason: int) -> bytes:
    """An A-ASSOCIATE-RJ PDU (PS3.8 9.3.4)."""
    return struct.pack(">BBIBBBB", ASSOCIATE_RJ, 0, 4, 0, result, source, reason)


def abort(reason: int) -> bytes:
    """An A-ABORT PDU from the service provider (PS3.8 9.3.8)."""
    return struct.pack(">BBIBBBB", ABORT, 0, 4, 0, 0, SERVICE_PROVIDER, reason)


def unknown_caller(reason: str) -> Answer:
    rejection = associate_reject(
        statuses.REJECTED_PERMANENT, statuses.SOURCE_SERVICE_USER, statuses.REASON_CALLING_AE_NOT_RECOGNIZED
    )
    return Answer(rejection, reason)


def too_many(reason: str) -> Answer:
    """Transient rejection, local limit exceeded: the peer may try again later."""
    return Answer(associate_reject(REJECTED_TRANSIENT, SOURCE_PRESENTATION, REASON_LOCAL_LIMIT_EXCEEDED), reason)


def pdu_length(header: bytes) -> int:
    """The length field of a PDU header (the bytes that follow the 6-byte header)."""
    return int(struct.unpack_from(">I", header, 2)[0])


def check_header(header: bytes) -> Answer | None:
    """None when `header` (6 bytes) starts an association request of a plausible size."""
    pdu_type = header[0]
    if pdu_type not in KNOWN_PDU_TYPES:
        return Answer(abort(UNRECOGNIZED_PDU), f"not DICOM (first byte 0x{pdu_type:02X})")
    if pdu_type != ASSOCIATE_RQ:
        return Answer(abort(UNEXPECTED_PDU), f"PDU type 0x{pdu_type:02X} before any association request")
    if pdu_length(header) < FIXED_PART_BYTES:
        return Answer(abort(INVALID_PARAMETER_VALUE), "association request shorter than its fixed part")
    return None


def check_size(header: bytes) -> Answer | None:
    """None when the announced request fits in `MAXIMUM_REQUEST_BYTES`."""
    if pdu_length(header) > MAXIMUM_REQUEST_BYTES:
        return Answer(
            abort(INVALID_PARAMETER_VALUE),
            f"association request of {pdu_length(header)} bytes (at most {MAXIMUM_REQUEST_BYTES})",
        )
    return None


def ae_title_at(fixed_part: bytes, offset: int) -> str:
    """An AE title field of the fixed part, stripped; '' when blank or not a valid AE title (PS3.5
    6.2: default repertoire, no backslash, no control character)."""
    raw = fixed_part[offset : offset + 16]
    if any(byte < 0x20 or byte > 0x7E or byte == 0x5C for byte in raw.rstrip(b"\0")):
        return ""
    return raw.rstrip(b"\0").decode("ascii").strip()


def calling_ae_title(fixed_part: bytes) -> str:
    return ae_title_at(fixed_part, 20)


def called_ae_title(fixed_part: bytes) -> str:
    return ae_title_at(fixed_part, 4)


class CheckedRequest(A_ASSOCIATE_RQ):
    """An A-ASSOCIATE-RQ PDU decoded, and made into its primitive, by `check_request`: the bytes it
    was decoded from (`received`) and the primitive, which pynetdicom's state machine then takes
    (its one call of `to_primitive`) instead of making it again."""

    received: bytes = b""
    primitive: A_ASSOCIATE | None = None

    def to_primitive(self) -> A_ASSOCIATE:
        """The primitive made when the request was checked (once; made anew after that)."""
        primitive, self.primitive = self.primitive, None
        return primitive if primitive is not None else super().to_primitive()


def check_request(request: bytes) -> CheckedRequest | Answer:
    """The request (`request`: header included) decoded into its primitive by pynetdicom, or an
    A-ABORT (invalid PDU parameter value) and what was wrong when it cannot be."""
    try:
        pdu, primitive = decoded(request)
    except Exception as error:  # pynetdicom raises many kinds of errors on hostile input
        return Answer(abort(INVALID_PARAMETER_VALUE), f"malformed association request ({short(error)})")
    checked = copy.copy(pdu)  # this association's own: `to_primitive` hands its primitive over once
    checked.received, checked.primitive = request, primitive
    return checked


@functools.lru_cache(maxsize=DECODED_REQUESTS)
def decoded(request: bytes) -> tuple[CheckedRequest, A_ASSOCIATE]:
    """The request decoded by pynetdicom, and its primitive; made once for the same bytes (a
    request that cannot be decoded raises, and is not kept)."""
    pdu = CheckedRequest()
    pdu.decode(request)
    return pdu, A_ASSOCIATE_RQ.to_primitive(pdu)


def short(error: Exception) -> str:
    """An exception as one short line for the log (no traceback)."""
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text[:120]}" if text else type(error).__name__
