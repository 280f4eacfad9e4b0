"""`direct_requests` (appliance/dicom/pynetdicom_patches.py): an idle reactor reads its peer's
P-DATA-TF PDUs itself, and must hand the DIMSE provider what pynetdicom's DUL would have handed it;
anything else stays on the socket (or is put back where the DUL reads first) for the DUL to read.
"""

from __future__ import annotations

import socket
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, _config, dimse_messages, evt
from pynetdicom.association import Association
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.transport import AddressInformation, AssociationSocket

from appliance.dicom import admission
from appliance.dicom import pynetdicom_patches as patches
from appliance.dicom.guarded_server import GuardedSocket
from tests.unit.dicom.test_store_fast_path import PLAIN_STORES, UNUSUAL, both, outcome, store_message

ABORT = bytes([0x07, 0, 0, 0, 0, 4, 0, 0, 0x02, 0x00])
RELEASE_REQUEST = bytes([0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0])
MAXIMUM = 1 << 22  # longer than any PDU of these messages: none is refused
CT = "1.2.840.10008.5.1.4.1.1.2"


@pytest.fixture(autouse=True)
def pynetdicom_as_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """pydicom's command writer (the reference), no logging handlers, the reader in force."""
    monkeypatch.setattr(dimse_messages, "encode", patches.PYDICOM_ENCODE)
    monkeypatch.setattr(_config, "LOG_HANDLER_LEVEL", "none")
    monkeypatch.setattr(_config, "STORE_RECV_CHUNKED_DATASET", False)
    monkeypatch.setattr(patches, "WAKE_POLL_SECONDS", 0.3)
    patches.apply(frozenset())


def acceptor(connection: socket.socket, maximum: int = MAXIMUM) -> Association:
    """An association the archive accepted, in the data transfer state, whose DUL has handed over
    the one PDU it read (the reactor may then read the next ones)."""
    association = Association(AE(), "acceptor")
    association.requestor.address_info = AddressInformation.from_tuple(connection.getpeername())
    association.requestor.ae_title = "MODALITY"
    association.dul.socket = AssociationSocket(association, client_socket=connection)
    association.dul.event_queue.get_nowait()  # the connection's own event (Evt5), which the DUL has handled
    GuardedSocket.take_over(association.dul.socket, b"", maximum, lambda length: None)
    association.dul.state_machine.current_state = "Sta6"
    association.dul._idle_timer.start()
    patches.wake_on_arrival(SimpleNamespace(assoc=association))  # type: ignore[arg-type]
    patches.fast_stores(SimpleNamespace(assoc=association))  # type: ignore[arg-type]
    reads(association).count = reader(association).handled = 1
    return association


def reads(association: Association) -> Any:
    return getattr(association, patches.READ_LOCK_ATTRIBUTE)


def reader(association: Association) -> patches.StoreReader:
    found = association.dimse.receive_primitive.__self__  # type: ignore[attr-defined]
    assert isinstance(found, patches.StoreReader)
    return found


def pdus(primitives: list[P_DATA]) -> bytes:
    """The P-DATA-TF PDUs pynetdicom writes for these primitives."""
    encoded_pdus = []
    for primitive in primitives:
        pdu = P_DATA_TF()
        pdu.from_primitive(primitive)
        encoded_pdus.append(pdu.encode())
    return b"".join(encoded_pdus)


def unread(connection: socket.socket) -> bytes:
    try:
        return connection.recv(1 << 20, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return b""


def read_until_delivered(association: Association, messages: int, turns: int = 20) -> None:
    """The reactor's idle sleeps until `messages` were queued or cancels taken (or `turns` pass),
    each message taken from the queue as the reactor takes it (then put back, in order)."""
    served: list[Any] = []
    queued = association.dimse.msg_queue
    for _ in range(turns):
        while not queued.empty():
            served.append(queued.get_nowait())
        if len(served) + len(association.dimse.cancel_req) >= messages:
            break
        assert patches.read_requests(association)
    for message in served:
        queued.put(message)


MESSAGES = {**PLAIN_STORES, **{name: UNUSUAL[name] for name in ("C-ECHO", "C-FIND", "C-CANCEL")}}


@pytest.mark.parametrize("name", list(MESSAGES))
def test_the_reactor_hands_over_what_the_dul_would_have_handed_over(
    tcp_pair: tuple[socket.socket, socket.socket], name: str
) -> None:
    primitives = MESSAGES[name]()
    expected, _fast, _handed = both(primitives)
    ours, theirs = tcp_pair
    association = acceptor(ours)
    theirs.sendall(pdus(primitives))
    read_until_delivered(association, len(expected["queued"]) + len(expected["cancels"]))
    assert outcome(association, []) == expected
    assert reads(association).count == reader(association).handled  # each PDU read counted, as the DUL counts
    assert getattr(association, patches.REQUESTS_ATTRIBUTE)  # nothing was left to the DUL


@pytest.mark.parametrize("name", [name for name in UNUSUAL if name != "an empty PDV"])
def test_an_unusual_message_ends_as_it_ends_when_the_dul_reads_it(
    tcp_pair: tuple[socket.socket, socket.socket], caplog: pytest.LogCaptureFixture, name: str
) -> None:
    """Whatever pynetdicom queues, refuses (its state machine's Evt19, for the DUL to abort) or
    raises (the association then aborted as when its DUL thread dies of it: one WARNING line, an
    A-ABORT, the DUL stopped)."""
    primitives = UNUSUAL[name]()
    expected, _fast, _handed = both(primitives)
    ours, theirs = tcp_pair
    association = acceptor(ours)
    theirs.sendall(pdus(primitives))
    time.sleep(0.05)
    served: list[Any] = []
    while waiting(ours) and getattr(association, patches.REQUESTS_ATTRIBUTE):
        assert patches.read_requests(association)
        while not association.dimse.msg_queue.empty():  # served, as the reactor serves them
            served.append(association.dimse.msg_queue.get_nowait())
    for message in served:
        association.dimse.msg_queue.put(message)
    found = outcome(association, [])
    if expected["errors"]:
        assert association.dul._kill_thread and not getattr(association, patches.REQUESTS_ATTRIBUTE)
        assert admission.abort(admission.UNEXPECTED_PDU) in unread(theirs)
        ours_logged = [record for record in caplog.records if record.name == patches.__name__]
        assert [(record.levelname, record.exc_info) for record in ours_logged] == [("WARNING", None)]
        assert "aborted: malformed message" in ours_logged[0].getMessage()
        return
    assert found["events"] == expected["events"]
    if not expected["events"]:
        assert found["queued"] == expected["queued"] and getattr(association, patches.REQUESTS_ATTRIBUTE)
        return
    # Evt19 (an invalid message): the DUL aborts, and reads whatever came after it, as before
    assert found["queued"] == expected["queued"][: len(found["queued"])]
    assert not getattr(association, patches.REQUESTS_ATTRIBUTE)


def waiting(connection: socket.socket) -> bool:
    """Whether bytes wait on `connection`, unread."""
    try:
        return bool(connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except BlockingIOError:
        return False


def test_an_empty_pdv_is_left_to_the_dul(tcp_pair: tuple[socket.socket, socket.socket]) -> None:
    primitives = UNUSUAL["an empty PDV"]()
    ours, theirs = tcp_pair
    association = acceptor(ours)
    command, empty = pdus(primitives[:1]), pdus(primitives[1:])
    theirs.sendall(command + empty)
    time.sleep(0.05)
    assert patches.read_requests(association)
    assert association.dul.socket.pending == empty  # type: ignore[union-attr]
    assert reader(association).primitives  # the message goes on with the DUL (which raises, as before)


@pytest.mark.parametrize("name", ["one fragment each", "data set in fragments", "one primitive", "C-FIND"])
def test_pdus_are_decoded_as_pynetdicom_decodes_them(name: str) -> None:
    for primitive in MESSAGES[name]():
        pdu = pdus([primitive])
        decoded = P_DATA_TF()
        decoded.decode(pdu)
        made = patches.p_data_of(bytearray(pdu))
        assert made is not None
        assert made.presentation_data_value_list == decoded.to_primitive().presentation_data_value_list


def test_a_message_whose_pdus_come_apart_is_read_whole(tcp_pair: tuple[socket.socket, socket.socket]) -> None:
    primitives = store_message(size=70_000, maximum=MAXIMUM)
    encoded_pdus = pdus(primitives)
    ours, theirs = tcp_pair
    association = acceptor(ours)
    theirs.sendall(encoded_pdus[:20_000])  # the rest, in the middle of a PDU, 0.2 s later
    threading.Timer(0.2, theirs.sendall, (encoded_pdus[20_000:],)).start()
    assert patches.read_requests(association)
    assert association.dimse.msg_queue.qsize() == 1
    assert outcome(association, []) == both(primitives)[0]


def test_two_messages_are_read_one_at_a_time(tcp_pair: tuple[socket.socket, socket.socket]) -> None:
    """The reactor serves each message before it reads the next one (as it takes them from the queue)."""
    ours, theirs = tcp_pair
    association = acceptor(ours)
    theirs.sendall(pdus(store_message(size=10) + store_message(size=20)))
    time.sleep(0.05)
    assert patches.read_requests(association)
    assert association.dimse.msg_queue.qsize() == 1
    association.dimse.msg_queue.get_nowait()
    assert patches.read_requests(association)
    assert association.dimse.msg_queue.qsize() == 1 and not unread(ours)


@pytest.mark.parametrize("sent", [ABORT, RELEASE_REQUEST], ids=["an A-ABORT", "an A-RELEASE-RQ"])
def test_another_pdu_is_left_unread_to_the_dul_from_then_on(
    tcp_pair: tuple[socket.socket, socket.socket], sent: bytes
) -> None:
    ours, theirs = tcp_pair
    association = acceptor(ours)
    theirs.sendall(sent)
    assert patches.read_requests(association)  # it waited, and read nothing
    assert association.dimse.msg_queue.empty()
    assert not getattr(association, patches.REQUESTS_ATTRIBUTE)
    assert reads(association).quiet_seconds() == 0.0  # the DUL watches its socket again
    assert not patches.read_requests(association)  # left to the DUL for the rest of the association
    assert unread(ours) == sent


def test_a_pdu_longer_than_announced_is_left_for_the_dul_to_refuse(
    tcp_pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = tcp_pair
    association = acceptor(ours, maximum=16384)
    command, data_set = (pdus([primitive]) for primitive in store_message(size=40_000, maximum=0))
    theirs.sendall(command + data_set)
    time.sleep(0.05)
    assert patches.read_requests(association)  # the command set read, then the data set left unread
    assert not getattr(association, patches.REQUESTS_ATTRIBUTE)
    assert reader(association).primitives  # the message goes on with the DUL, which refuses the PDU
    assert unread(ours) == data_set


@pytest.mark.parametrize(
    "sent",
    [
        bytes([0x04, 0, 0, 0, 0, 8, 0, 0, 0, 9, 1, 3, 0, 0]),  # a PDV longer than its PDU
        bytes([0x04, 0, 0, 0, 0, 6, 0, 0, 0, 1, 1, 3]),  # a PDV without its control header
        bytes([0x04, 0, 0, 0, 0, 0]),  # no PDV at all
    ],
    ids=["overrunning PDV", "empty PDV", "no PDV"],
)
def test_a_malformed_pdu_is_put_back_where_the_dul_reads_first(
    tcp_pair: tuple[socket.socket, socket.socket], sent: bytes
) -> None:
    ours, theirs = tcp_pair
    association = acceptor(ours)
    theirs.sendall(sent)
    time.sleep(0.05)
    assert patches.read_requests(association)
    assert association.dul.socket.pending == sent  # type: ignore[union-attr]
    assert association.dul.socket.ready  # type: ignore[union-attr]
    assert not getattr(association, patches.REQUESTS_ATTRIBUTE) and association.dimse.msg_queue.empty()


def test_a_pdu_cut_short_by_the_peer_closing_is_put_back(tcp_pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = tcp_pair
    association = acceptor(ours)
    sent = pdus(store_message(size=2_000))[:100]
    theirs.sendall(sent)
    theirs.shutdown(socket.SHUT_WR)
    assert patches.read_requests(association)
    assert association.dul.socket.pending == sent  # type: ignore[union-attr]


def test_the_reactor_takes_over_only_what_the_dul_has_handed_over(
    tcp_pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, _theirs = tcp_pair
    association = acceptor(ours)
    assert patches.request_connection(association) is ours
    reads(association).count += 1  # a PDU the DUL read and has not handed over yet
    assert patches.request_connection(association) is None
    reader(association).handled += 1
    assert patches.request_connection(association) is ours
    reads(association).count = reader(association).handled = 0  # the DUL has read nothing yet
    assert patches.request_connection(association) is None


@pytest.mark.parametrize(
    "change",
    [
        "bytes read ahead",
        "a message queued",
        "something to send",
        "release requested",
        "a handler on received PDUs",
        "a plain socket wrapper",
        "not the archive's",
    ],
)
def test_the_dul_keeps_reading_when(tcp_pair: tuple[socket.socket, socket.socket], change: str) -> None:
    ours, _theirs = tcp_pair
    association = acceptor(ours)
    wrapper: Any = association.dul.socket
    if change == "bytes read ahead":
        wrapper.pending = bytearray(b"\x04")
    elif change == "a message queued":
        association.dimse.msg_queue.put((1, "a message"))
    elif change == "something to send":
        association.dul.to_provider_queue.put("an A-RELEASE")
    elif change == "release requested":
        association.dul.state_machine.current_state = "Sta7"
    elif change == "a handler on received PDUs":
        association.bind(evt.EVT_DATA_RECV, lambda event: None)
    elif change == "a plain socket wrapper":
        wrapper.__class__ = AssociationSocket
        del wrapper.pending, wrapper.maximum_pdu_bytes
    else:
        setattr(association, patches.REQUESTS_ATTRIBUTE, False)
    assert patches.request_connection(association) is None
    assert not patches.read_requests(association)


def test_an_idle_reactor_watches_its_socket_for_its_usual_sleep(tcp_pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = tcp_pair
    association = acceptor(ours)
    start = time.monotonic()
    assert patches.read_requests(association)
    assert 0.25 < time.monotonic() - start < 2.0 and association.dimse.msg_queue.empty()
    assert reads(association).quiet_seconds() > 0  # meanwhile the DUL leaves the socket alone
    threading.Timer(0.05, theirs.sendall, (pdus(store_message(size=10)),)).start()
    start = time.monotonic()
    assert patches.read_requests(association)
    assert time.monotonic() - start < 0.25 and association.dimse.msg_queue.qsize() == 1


def test_stores_on_a_real_association_are_read_by_the_reactor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Twenty C-STORE requests from a pynetdicom requestor to an acceptor with the archive's
    handlers: after the first, the reactor thread reads them, not the DUL thread."""
    stored: list[int] = []
    readers: list[str] = []
    receive = patches.StoreReader.receive

    def counted(reader: patches.StoreReader, primitive: P_DATA) -> None:
        if reader.dimse.assoc.is_acceptor:  # not the responses the requestor reads
            readers.append(type(threading.current_thread()).__name__)
        receive(reader, primitive)

    monkeypatch.setattr(patches.StoreReader, "receive", counted)

    def guarded(event: Any) -> None:
        GuardedSocket.take_over(event.assoc.dul.socket, b"", 16384, lambda length: None)

    def on_store(event: Any) -> int:
        stored.append(event.request.MessageID)
        return 0x0000

    archive = AE("ARCHIVE")
    archive.add_supported_context(CT, "1.2.840.10008.1.2.1")
    archive.maximum_pdu_size = 16384
    handlers = [
        *patches.CONNECTION_HANDLERS,
        (evt.EVT_CONN_OPEN, guarded),
        (evt.EVT_ESTABLISHED, patches.fast_stores),
        (evt.EVT_C_STORE, on_store),
    ]
    server = archive.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
    assert server is not None
    try:
        modality = AE("MODALITY")
        modality.add_requested_context(CT, "1.2.840.10008.1.2.1")
        modality.dimse_timeout = 5
        # The requestor's handlers close pynetdicom's window in which its own reactor thread takes
        # the response send_c_store waits for (`serialise_reactor`): prompt answers hit it.
        association = modality.associate(
            "127.0.0.1", server.server_address[1], ae_title="ARCHIVE", evt_handlers=list(patches.REQUESTOR_HANDLERS)
        )
        assert association.is_established
        image = Dataset()
        image.file_meta = FileMetaDataset()
        image.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        image.SOPClassUID, image.SOPInstanceUID = CT, "1.2.826.0.1.3680043.10.1471.17"
        image.add_new(0x7FE00010, "OB", bytes(40_000))  # pixel data: three PDUs of at most 16 KB
        statuses = [association.send_c_store(image, msg_id=number).Status for number in range(1, 21)]
        association.release()
    finally:
        server.shutdown()
    assert statuses == [0] * 20 and stored == list(range(1, 21))
    assert len(readers) == 20 * 4  # a command PDU and three data set PDUs each
    assert readers.count("Association") >= 19 * 4 - 8  # all but the first store (and a race or two)
