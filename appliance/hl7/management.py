"""NMQ^N01, the network management query (HL7 v2.5 §14.3.1): a peer asks whether the listener is up
and what its clock says. The RIS's interface engine may send it as a heartbeat; the box's health
monitor sends one every round (`appliance.monitor.dicom`).

The answer is NMR^N01: MSA with AA and the query's control ID, then NCK with the listener's system
date and time (with its UTC offset). Nothing is stored and nothing is audited (the message names
no patient), and the listener logs it at DEBUG only: one line every 30 s from the monitor would
bury the journal's useful lines.
"""

from __future__ import annotations

from datetime import datetime

from appliance import practice_time
from appliance.hl7.acks import ACCEPT, LEGACY_VERSIONS, RequestHeader, answer_header
from appliance.hl7.er7 import Message, encode_text
from appliance.hl7.writer import SegmentValues, render_by_hand, text

QUERY = ("NMQ", "N01")


def network_answer(message: Message, application: str, facility: str) -> bytes:
    """The NMR^N01 answering `message` (an NMQ^N01), in its version and character set."""
    request = RequestHeader.of(message)
    legacy = request.version in LEGACY_VERSIONS
    header = answer_header(request, "NMR^N01" if legacy else "NMR^N01^NMR_N01", application, facility)
    clock = f"{datetime.now(practice_time.zone()):%Y%m%d%H%M%S%z}"
    segments = [
        SegmentValues("MSA", {1: ACCEPT, 2: text(request.control_id)}),
        SegmentValues("NCK", {1: clock}),
    ]
    return encode_text(render_by_hand(header, segments), request.codec)
