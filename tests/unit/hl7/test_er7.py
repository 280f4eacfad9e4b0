"""Reading ER7: the four character sets, escapes, separators, malformed input."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2]))

from hl7_client import golden

from appliance.hl7 import er7
from appliance.hl7.mllp import FrameReader


@pytest.mark.parametrize(
    ("name", "codec", "family"),
    [
        ("a28_utf8.hl7", "utf-8", "ŒUVRARD"),
        ("a28_8859-1.hl7", "iso-8859-1", "LEFÈVRE"),
        ("a28_unlabelled_latin1.hl7", "cp1252", "GARÇON"),
        ("a40_merge.hl7", "iso-8859-15", "ŒUVRARD"),
    ],
)
def test_character_sets_are_decoded_from_msh_18(name: str, codec: str, family: str) -> None:
    message = er7.parse(golden(name))
    pid = message.segment("PID")
    assert message.codec == codec
    assert pid is not None and pid.get(5, 1) == family


def test_unlabelled_utf8_is_detected() -> None:
    data = golden("a28_utf8.hl7").replace(b"UNICODE UTF-8", b"")
    assert er7.parse(data).codec == "utf-8"


def test_fields_components_repetitions_subcomponents() -> None:
    message = er7.parse(golden("a31_nia_to_nir.hl7"))
    pid = message.segment("PID")
    assert pid is not None
    assert message.message_code == "ADT" and message.trigger_event == "A31" and message.version == "2.5"
    assert message.control_id == "20210318151910"
    identifiers = pid.repetitions(3)
    assert [value.get(1) for value in identifiers] == ["1900068", "260058815400244", "260058815400233"]
    assert identifiers[2].get(4, 2) == "1.2.250.1.213.1.4.8"
    assert pid.repetitions(5)[1].get(3) == "JEANNE MARIE CECILE"
    assert pid.get(32) == "VALI"


def test_escapes_are_decoded_in_the_message_charset() -> None:
    data = b"MSH|^~\\&|A|B|C|D|20250101||ADT^A28|1|P|2.5||||||8859/15\rPID|1||X\\F\\Y\\S\\Z\\E\\\\XBC\\\\.br\\T\r"
    pid = er7.parse(data).segment("PID")
    assert pid is not None
    assert pid.get(3) == "X|Y^Z\\Œ\nT"


def test_escape_round_trip() -> None:
    text = "A|B^C&D~E\\F\nG"
    separators = er7.Separators()
    assert er7.unescape(er7.escape(text), separators, "utf-8") == text


def test_line_feeds_between_segments_are_accepted() -> None:
    data = golden("a28_utf8.hl7").replace(b"\r", b"\r\n")
    assert [segment.name for segment in er7.parse(data).segments] == ["MSH", "EVN", "PID", "ZFD"]


@pytest.mark.parametrize(
    "data",
    [
        b"PID|1||X\r",
        b"garbage without any header",
        b"MSH|^~|A|B\rPID|1\r",
        b"MSH|^~\\&|A|B|C|D|20250101||ADT^A28|1|P|2.5\rP I|1\r",
        b"MSH|^~\\&|A|B|C|D|20250101||ADT^A28|1|P|2.5||||||8859/2\r",
    ],
)
def test_malformed_messages_raise(data: bytes) -> None:
    with pytest.raises(er7.MessageError):
        er7.parse(data)


def test_encoding_spells_out_what_latin1_lacks() -> None:
    assert er7.encode_text("ŒUVRE 20 €", "iso-8859-1") == b"OEUVRE 20 EUR"


def test_frame_interrupted_by_a_new_start_block_keeps_the_complete_one() -> None:
    left, right = socket.socketpair()
    with left, right:
        left.sendall(b"\x0bMSH|partial\x0bMSH|complete\x1c\x0d")
        reader = FrameReader(right, 1024, lambda: False)
        assert reader.next_frame(idle_timeout=5) == b"MSH|complete"
