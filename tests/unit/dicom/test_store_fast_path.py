"""`command_reader` and `store_responses` (appliance/dicom/pynetdicom_patches.py), against pynetdicom.

The reader must queue, for any sequence of P-DATA primitives, what pynetdicom's own
`receive_primitive` queues (the same primitives, values and data set), and raise, log and abort
where it does; the responder must write the bytes pynetdicom's DUL writes for the same response.
"""

from __future__ import annotations

import io
import queue
from types import SimpleNamespace
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, _config, dimse_messages, evt
from pynetdicom.association import Association
from pynetdicom.dimse_messages import C_ECHO_RQ, C_FIND_RQ, C_STORE_RQ, C_STORE_RSP
from pynetdicom.dimse_primitives import C_CANCEL, C_ECHO, C_FIND, C_STORE
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.service_class import StorageServiceClass

from appliance.dicom import pynetdicom_patches as patches

CT = "1.2.840.10008.5.1.4.1.1.2"
INSTANCE_EVEN = "1.2.826.0.1.3680043.10.1471.17"
INSTANCE_ODD = "1.2.826.0.1.3680043.10.1471.7"


@pytest.fixture(autouse=True)
def pynetdicom_as_shipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """pydicom's command writer (the reference), no logging handlers bound to DIMSE events."""
    monkeypatch.setattr(dimse_messages, "encode", patches.PYDICOM_ENCODE)
    monkeypatch.setattr(_config, "LOG_HANDLER_LEVEL", "none")
    monkeypatch.setattr(_config, "STORE_RECV_CHUNKED_DATASET", False)


def store_request(
    instance: str = INSTANCE_EVEN, priority: int = 2, originator: str | None = None, originator_id: int | None = None
) -> C_STORE:
    request = C_STORE()
    request.MessageID = 513
    request.AffectedSOPClassUID = CT
    request.AffectedSOPInstanceUID = instance
    request.Priority = priority
    request.MoveOriginatorApplicationEntityTitle = originator
    request.MoveOriginatorMessageID = originator_id
    return request


def encoded(message: Any, primitive: Any, maximum: int = 16384, context_id: int = 3) -> list[P_DATA]:
    """The P-DATA primitives pynetdicom sends for `primitive`."""
    message.primitive_to_message(primitive)
    return list(message.encode_msg(context_id, maximum))


def store_message(size: int = 1000, maximum: int = 16384, **request: Any) -> list[P_DATA]:
    primitive = store_request(**request)
    primitive.DataSet = io.BytesIO(bytes(range(256)) * (size // 256) + bytes(size % 256))
    return encoded(C_STORE_RQ(), primitive, maximum)


def joined(primitives: list[P_DATA]) -> list[P_DATA]:
    """The same PDVs, all in one P-DATA primitive (several PDVs in one PDU)."""
    one = P_DATA()
    one.presentation_data_value_list = [
        [context_id, data] for primitive in primitives for context_id, data in primitive.presentation_data_value_list
    ]
    return [one]


def pdv(context_id: int, data: bytes) -> P_DATA:
    primitive = P_DATA()
    primitive.presentation_data_value_list = [[context_id, data]]
    return primitive


def raw_command(*elements: tuple[int, bytes]) -> bytes:
    return b"".join(patches.ELEMENT_HEADER.pack(0, element, len(value)) + value for element, value in elements)


def plain_elements(priority: bytes = b"\2\0", extra: tuple[tuple[int, bytes], ...] = ()) -> list[tuple[int, bytes]]:
    elements = [
        (0x0002, CT.encode() + b"\0"),
        (0x0100, b"\1\0"),
        (0x0110, b"\7\0"),
        (0x0700, priority),
        (0x0800, b"\1\0"),
        (0x1000, INSTANCE_EVEN.encode()),
        *extra,
    ]
    return sorted(elements)


def hand_made(command: bytes, data: bytes = b"\x08\x00\x16\x00\x02\x00\x00\x00AB") -> list[P_DATA]:
    return [pdv(1, b"\x03" + command), pdv(1, b"\x02" + data)]


def described(value: Any) -> Any:
    if isinstance(value, io.BytesIO):
        return ("BytesIO", value.getvalue(), value.tell())
    return (type(value).__name__, value)


def outcome(association: Association, errors: list[str]) -> dict[str, Any]:
    dimse = association.dimse
    return {
        "queued": [
            (context_id, type(item).__name__, {name: described(value) for name, value in sorted(vars(item).items())})
            for context_id, item in dimse.msg_queue.queue
        ],
        "cancels": sorted(dimse.cancel_req),
        "events": list(association.dul.event_queue.queue),
        "errors": errors,
        "in_progress": dimse.message is not None,
    }


def feed(receive: Any, association: Association, primitives: list[P_DATA]) -> dict[str, Any]:
    errors = []
    for primitive in primitives:
        try:
            receive(primitive)
        except Exception as error:  # what pynetdicom raises in its DUL thread, compared below
            errors.append(type(error).__name__)
    return outcome(association, errors)


def both(primitives: list[P_DATA]) -> tuple[dict[str, Any], dict[str, Any], int]:
    """What pynetdicom does with `primitives`, what the reader does, and how many primitives the
    reader handed to pynetdicom."""
    ae = AE()
    native = Association(ae, "acceptor")
    expected = feed(native.dimse.receive_primitive, native, primitives)
    fast = Association(ae, "acceptor")
    handed: list[P_DATA] = []
    original = fast.dimse.receive_primitive

    def counted(primitive: P_DATA) -> None:
        handed.append(primitive)
        original(primitive)

    reader = patches.StoreReader(fast.dimse, counted)
    actual = feed(reader.receive, fast, primitives)
    return expected, actual, len(handed)


PLAIN_STORES = {
    "one fragment each": lambda: store_message(),
    "odd instance UID": lambda: store_message(instance=INSTANCE_ODD),
    "urgent, from a C-MOVE": lambda: store_message(priority=1, originator="MOVESCU", originator_id=65535),
    "low priority, odd originator": lambda: store_message(priority=0, originator="PACS", originator_id=0),
    "data set in fragments": lambda: store_message(size=70_000, maximum=16384),
    "command set in fragments": lambda: store_message(size=300, maximum=40),
    "unlimited PDU": lambda: store_message(size=600_001, maximum=0),
    "one byte": lambda: store_message(size=1),
    "one primitive": lambda: joined(store_message(size=40_000, maximum=16384)),
    "two stores in a row": lambda: store_message(size=10) + store_message(size=20_000, instance=INSTANCE_ODD),
    "a valid UID that does not conform": lambda: hand_made(
        raw_command(*[(tag, b"1.2.abc\0" if tag == 0x1000 else value) for tag, value in plain_elements()])
    ),
    # pynetdicom drops what follows a complete message in the same P-DATA; so does the reader
    "a store then an echo in one primitive": lambda: joined(store_message() + encoded(C_ECHO_RQ(), echo())),
}


@pytest.mark.parametrize("name", list(PLAIN_STORES))
def test_the_reader_queues_what_pynetdicom_queues(name: str) -> None:
    expected, actual, handed = both(PLAIN_STORES[name]())
    assert expected["queued"] and not expected["errors"]
    assert actual == expected
    assert handed == 0, "read by pynetdicom"


def store_response(
    status: int = 0x0000, instance: str | None = INSTANCE_EVEN, comment: str | None = None, offending: Any = None
) -> C_STORE:
    response = C_STORE()
    response.MessageIDBeingRespondedTo = 513
    response.AffectedSOPClassUID = CT if instance else None
    response.AffectedSOPInstanceUID = instance
    response.Status = status
    response.ErrorComment = comment
    response.OffendingElement = offending
    return response


def response_message(maximum: int = 16384, **response: Any) -> list[P_DATA]:
    return encoded(C_STORE_RSP(), store_response(**response), maximum)


def response_elements(extra: tuple[tuple[int, bytes], ...] = (), status: bytes = b"\0\0") -> list[tuple[int, bytes]]:
    elements = [
        (0x0002, CT.encode() + b"\0"),
        (0x0100, b"\1\x80"),
        (0x0120, b"\1\2"),
        (0x0800, b"\1\1"),
        (0x0900, status),
        (0x1000, INSTANCE_EVEN.encode()),
        *extra,
    ]
    return sorted(elements)


PLAIN_RESPONSES = {
    "success": lambda: response_message(),
    "warning B000": lambda: response_message(status=0xB000),
    "failure A700": lambda: response_message(status=0xA700),
    "odd instance UID": lambda: response_message(instance=INSTANCE_ODD),
    "without the UIDs": lambda: response_message(instance=None),
    "command set in fragments": lambda: response_message(maximum=40),
    "two responses in a row": lambda: response_message() + response_message(status=0xC000),
    "a response then a store": lambda: response_message() + store_message(size=10),
}


@pytest.mark.parametrize("name", list(PLAIN_RESPONSES))
def test_the_reader_queues_the_responses_pynetdicom_queues(name: str) -> None:
    expected, actual, handed = both(PLAIN_RESPONSES[name]())
    assert expected["queued"] and not expected["errors"]
    assert actual == expected
    assert handed == 0, "read by pynetdicom"


def cancel() -> C_CANCEL:
    primitive = C_CANCEL()
    primitive.MessageIDBeingRespondedTo = 513
    return primitive


def echo() -> C_ECHO:
    primitive = C_ECHO()
    primitive.MessageID = 2
    primitive.AffectedSOPClassUID = "1.2.840.10008.1.1"
    return primitive


def find() -> C_FIND:
    primitive = C_FIND()
    primitive.MessageID = 3
    primitive.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.1"
    primitive.Priority = 2
    primitive.Identifier = io.BytesIO(b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY ")
    return primitive


def store_without_data_set() -> list[P_DATA]:
    return encoded(C_STORE_RQ(), store_request())  # no DataSet: CommandDataSetType 0101H


def cancel_message() -> list[P_DATA]:
    message = dimse_messages.C_CANCEL_RQ()
    return encoded(message, cancel())


UNUSUAL = {
    "C-ECHO": lambda: encoded(C_ECHO_RQ(), echo()),
    "C-FIND": lambda: encoded(C_FIND_RQ(), find()),
    "C-CANCEL": cancel_message,
    "C-STORE without a data set": store_without_data_set,
    "C-STORE with a Status element": lambda: hand_made(raw_command(*plain_elements(extra=((0x0900, b"\0\0"),)))),
    "C-STORE with priority 5": lambda: hand_made(raw_command(*plain_elements(priority=b"\5\0"))),
    "C-STORE with a 4-byte priority": lambda: hand_made(raw_command(*plain_elements(priority=b"\2\0\0\0"))),
    "C-STORE elements out of order": lambda: hand_made(raw_command(*reversed(plain_elements()))),
    "C-STORE with a multi-valued UID": lambda: hand_made(
        raw_command(*[(tag, b"1.2\\1.3\0" if tag == 0x1000 else value) for tag, value in plain_elements()])
    ),
    "C-STORE with a non-ASCII UID": lambda: hand_made(
        raw_command(*[(tag, "1.2.é".encode() if tag == 0x1000 else value) for tag, value in plain_elements()])
    ),
    "C-STORE with a UID of 66 characters": lambda: hand_made(
        raw_command(*[(tag, b"1." * 33 if tag == 0x1000 else value) for tag, value in plain_elements()])
    ),
    "C-STORE with an empty UID": lambda: hand_made(
        raw_command(*[(tag, b"" if tag == 0x1000 else value) for tag, value in plain_elements()])
    ),
    "C-STORE with an invalid originator": lambda: hand_made(
        raw_command(*plain_elements(extra=((0x1030, b"BAD\\TITLE "), (0x1031, b"\1\0"))))
    ),
    "C-STORE with a blank originator": lambda: hand_made(raw_command(*plain_elements(extra=((0x1030, b"    "),)))),
    "command set without Command Field": lambda: hand_made(
        raw_command(*[element for element in plain_elements() if element[0] != 0x0100])
    ),
    "command set cut in an element": lambda: hand_made(raw_command(*plain_elements())[:-3]),
    "data before the command set": lambda: [pdv(1, b"\x02ABCD"), *store_message()],
    "a command fragment inside the data set": lambda: [
        *store_message(size=70_000)[:2],
        pdv(3, b"\x03" + raw_command(*plain_elements())),
        *store_message(size=70_000)[2:],
    ],
    "an empty PDV": lambda: [*store_message()[:1], pdv(3, b"")],
    "an echo then a store in one primitive": lambda: joined(encoded(C_ECHO_RQ(), echo()) + store_message()),
    "an echo, then a store": lambda: encoded(C_ECHO_RQ(), echo()) + store_message(size=3000),
    "C-STORE-RSP with an Error Comment": lambda: response_message(status=0xA700, comment="Disk full"),
    "C-STORE-RSP with an Offending Element": lambda: response_message(status=0xC000, offending=[0x00100010]),
    "C-STORE-RSP without a status": lambda: hand_made(
        raw_command(*[element for element in response_elements() if element[0] != 0x0900])
    ),
    "C-STORE-RSP with a 4-byte status": lambda: hand_made(raw_command(*response_elements(status=b"\0\0\0\0"))),
    "C-STORE-RSP with a data set": lambda: hand_made(
        raw_command(*[(tag, b"\0\0" if tag == 0x0800 else value) for tag, value in response_elements()])
    ),
    "C-STORE-RSP with a Message ID": lambda: hand_made(raw_command(*response_elements(extra=((0x0110, b"\7\0"),)))),
    "C-STORE-RSP with an invalid UID": lambda: hand_made(
        raw_command(*[(tag, b"1..2\0" if tag == 0x1000 else value) for tag, value in response_elements()])
    ),
}


@pytest.mark.parametrize("name", list(UNUSUAL))
def test_anything_else_is_read_by_pynetdicom_with_the_same_outcome(name: str) -> None:
    expected, actual, handed = both(UNUSUAL[name]())
    assert actual == expected
    assert handed > 0


def test_a_handler_on_dimse_received_makes_the_reader_step_aside() -> None:
    association = Association(AE(), "acceptor")
    association.bind(evt.EVT_DIMSE_RECV, lambda event: None)
    handed: list[P_DATA] = []
    reader = patches.StoreReader(association.dimse, handed.append)
    for primitive in store_message():
        reader.receive(primitive)
    assert len(handed) == 2 and association.dimse.msg_queue.empty()


def test_a_message_pynetdicom_started_stays_with_it() -> None:
    association = Association(AE(), "acceptor")
    first, second = store_message()
    association.dimse.receive_primitive(first)  # read before the reader was installed
    patches.read_store_messages(association)
    association.dimse.receive_primitive(second)
    assert association.dimse.msg_queue.qsize() == 1 and association.dimse.message is None
    for primitive in store_message(size=10):
        association.dimse.receive_primitive(primitive)
    assert association.dimse.msg_queue.qsize() == 2


class Written:
    """The socket wrapper of a fake association: what was sent."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sent.append(bytes(data))


def fake_association(maximum: int = 16384, state: str = "Sta6", handlers: bool = False) -> Any:
    socket = Written()
    dul = SimpleNamespace(
        socket=socket, state_machine=SimpleNamespace(current_state=state), to_provider_queue=queue.Queue()
    )
    return SimpleNamespace(
        dul=dul, dimse=SimpleNamespace(maximum_pdu_size=maximum), get_handlers=lambda event: [print] if handlers else []
    )


def status_dataset(status: int, comment: str | None = None, offending: Any = None) -> Dataset:
    dataset = Dataset()
    dataset.Status = status
    if comment is not None:
        dataset.ErrorComment = comment
    if offending is not None:
        dataset.OffendingElement = offending
    return dataset


def response(status: Any, instance: str = INSTANCE_EVEN, message_id: int = 513) -> C_STORE:
    """The response pynetdicom's Storage SCP builds for a handler's `status`."""
    request = store_request(instance)
    request.MessageID = message_id
    primitive = C_STORE()
    primitive.MessageID = request.MessageID
    primitive.MessageIDBeingRespondedTo = request.MessageID
    primitive.AffectedSOPInstanceUID = request.AffectedSOPInstanceUID
    primitive.AffectedSOPClassUID = request.AffectedSOPClassUID
    return StorageServiceClass(None).validate_status(status, primitive)  # type: ignore[arg-type]


def pynetdicom_bytes(primitive: C_STORE, maximum: int, context_id: int = 5) -> bytes:
    """What pynetdicom's DUL writes for this response (DT-1: one P-DATA-TF PDU per P-DATA)."""
    message = C_STORE_RSP()
    message.primitive_to_message(primitive)
    return b"".join(P_DATA_TF(pdata).encode() for pdata in message.encode_msg(context_id, maximum))


RESPONSES = {
    "success": (0x0000, INSTANCE_EVEN),
    "success, odd UID": (0x0000, INSTANCE_ODD),
    "coercion warning B000": (0xB000, INSTANCE_EVEN),
    "elements discarded B007": (0xB007, INSTANCE_ODD),
    "out of resources A700": (0xA700, INSTANCE_EVEN),
    "does not match A900 with a reason": (status_dataset(0xA900, "SOP Instance UID differs"), INSTANCE_EVEN),
    "cannot understand C000, odd reason": (status_dataset(0xC000, "bad"), INSTANCE_ODD),
    "SOP class not supported 0122, long reason": (status_dataset(0x0122, "x" * 64), INSTANCE_EVEN),
    "not authorized 0124, empty reason": (status_dataset(0x0124, ""), INSTANCE_EVEN),
    "handler exception C211": (0xC211, INSTANCE_EVEN),
    "dataset without Status": (Dataset(), INSTANCE_EVEN),
    "unknown status": (0x1234, INSTANCE_EVEN),
    "largest message ID": (0x0000, INSTANCE_EVEN),
}


@pytest.mark.parametrize("name", list(RESPONSES))
@pytest.mark.parametrize("maximum", [0, 16384, 200])
def test_the_responder_writes_what_pynetdicom_writes(name: str, maximum: int) -> None:
    status, instance = RESPONSES[name]
    primitive = response(status, instance, 65535 if name == "largest message ID" else 513)
    association = fake_association(maximum)
    expected = pynetdicom_bytes(primitive, maximum)
    one_pdu = not maximum or len(expected) <= maximum + 6  # PDU type, reserved byte, PDU length
    assert patches.store_response(association, primitive, 5) == one_pdu
    assert association.dul.socket.sent == ([expected] if one_pdu else [])


@pytest.mark.parametrize(
    ("why", "primitive", "association"),
    [
        ("an Offending Element", response(status_dataset(0xC000, "x", 0x00100010)), fake_association()),
        ("a reason that is not ASCII", response(status_dataset(0xA900, "Données")), fake_association()),
        ("a request, not a response", store_request(), fake_association()),
        ("a PDU too small for the command set", response(0x0000), fake_association(maximum=100)),
        ("not in the data transfer state", response(0x0000), fake_association(state="Sta13")),
        ("a handler on the sent events", response(0x0000), fake_association(handlers=True)),
    ],
)
def test_pynetdicom_sends_the_unusual_responses(why: str, primitive: C_STORE, association: Any) -> None:
    assert not patches.store_response(association, primitive, 5), why
    assert association.dul.socket.sent == []


def test_a_message_queued_for_the_dul_is_not_overtaken() -> None:
    association = fake_association()
    association.dul.to_provider_queue.put(P_DATA())
    assert not patches.store_response(association, response(0x0000), 5)
