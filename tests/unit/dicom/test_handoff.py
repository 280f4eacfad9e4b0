"""The wire between the archive's acceptor and a serving process (`dicom.handoff`), in one process."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from appliance.daemons import serving as serving_module
from appliance.daemons.serving import Serving, ServingProcesses
from appliance.dicom import handoff


def test_a_connection_handed_over_keeps_its_request_and_peer() -> None:
    """The wire between acceptor and serving process, in one process: the descriptor handed over is
    the same TCP connection, the request and the peer's address come whole."""
    acceptor, server = handoff.channel_pair()
    with acceptor, server, socket.create_server(("127.0.0.1", 0)) as listening:
        peer = socket.create_connection(listening.getsockname())
        connection, address = listening.accept()
        request = bytes(range(256)) * 1000  # more than the channel's buffer holds: sent while taken
        sending = threading.Thread(
            target=handoff.hand, args=(acceptor, connection, handoff.Handed(7, (address[0], address[1]), request))
        )
        sending.start()
        taken = handoff.take(server)
        sending.join()
        connection.close()
        assert taken is not None
        handed_connection, handed = taken
        assert handed == handoff.Handed(7, (address[0], address[1]), request)
        with peer, handed_connection:
            handed_connection.sendall(b"answer")
            assert peer.recv(6) == b"answer"
        handoff.Reports(server).ended(7)
        assert handoff.next_report(acceptor) == (handoff.ENDED, 7)
        server.close()
        assert handoff.next_report(acceptor) is None


class Running:
    """Stands for a serving process that runs (`Popen.poll`), and notes whether it was killed."""

    pid = 0

    def __init__(self) -> None:
        self.killed = False

    def poll(self) -> None:
        return None

    def kill(self) -> None:
        self.killed = True


def hand_at_once(count: int, most: int, most_from_address: int) -> tuple[ServingProcesses, list[str | None]]:
    """`count` hand-overs from 127.0.0.1 at the same moment to two running serving processes."""
    processes = ServingProcesses([], 2, threading.Event())
    channels = [handoff.channel_pair() for _ in range(2)]
    processes.slots = [Serving(number, Running(), ours) for number, (ours, _theirs) in enumerate(channels)]  # type: ignore[arg-type]
    for serving in processes.slots:
        serving.ready.set()
    start = threading.Barrier(count)
    answers: list[str | None] = []

    def hand_one() -> None:
        ours, theirs = socket.socketpair()
        with ours, theirs:
            start.wait()
            answers.append(processes.hand(ours, ("127.0.0.1", 104), b"request", most, most_from_address))

    threads = [threading.Thread(target=hand_one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for ours, theirs in channels:
        ours.close()
        theirs.close()
    return processes, answers


def test_handshakes_admitted_side_by_side_cannot_pass_the_total_together() -> None:
    """The total is checked and counted at once: 20 hand-overs at the same moment against a total
    of 5 leave 5 handed (spread over both serving processes) and 15 refused with the reason."""
    processes, answers = hand_at_once(20, most=5, most_from_address=20)
    assert answers.count(None) == 5
    assert answers.count("5 associations already open") == 15
    assert sorted(len(serving.open) for serving in processes.slots) == [2, 3]
    assert processes.associations_from("127.0.0.1") == 5


def test_handshakes_admitted_side_by_side_cannot_pass_the_per_address_limit_together() -> None:
    processes, answers = hand_at_once(20, most=10, most_from_address=3)
    assert answers.count(None) == 3
    assert answers.count("3 associations already open from 127.0.0.1") == 17
    assert processes.associations_from("127.0.0.1") == 3


def test_a_liveness_question_is_taken_apart_from_hand_overs_and_answered() -> None:
    acceptor, server = handoff.channel_pair()
    with acceptor, server:
        handoff.ask_alive(acceptor)
        assert handoff.take(server) == handoff.Handed(handoff.QUESTION, ("", 0), b"")
        handoff.Reports(server).alive()
        assert handoff.next_report(acceptor) == (handoff.ALIVE, 0)
        handoff.ask_alive(acceptor)
        server.close()  # killed with a question unread: the acceptor's end is reset
        assert handoff.next_report(acceptor) is None


def test_a_hand_over_broken_off_in_its_header_or_body_is_a_connection_error() -> None:
    """What the thread that takes connections passes over (an OSError), never a crash of it."""
    whole = handoff.HEADER.pack(3, 10, 104, 9) + b"127.0.0.1" + bytes(4)
    for cut in (handoff.HEADER.size - 2, len(whole) - 2):
        acceptor, server = handoff.channel_pair()
        with acceptor, server:
            acceptor.sendall(whole[:cut])
            acceptor.close()
            with pytest.raises(ConnectionError, match=handoff.BROKEN_OFF):
                handoff.take(server)


def two_running() -> tuple[ServingProcesses, list[socket.socket]]:
    """Two running serving processes, ready; the serving processes' ends of their channels."""
    processes = ServingProcesses([], 2, threading.Event())
    channels = [handoff.channel_pair() for _ in range(2)]
    processes.slots = [Serving(number, Running(), ours) for number, (ours, _theirs) in enumerate(channels)]  # type: ignore[arg-type]
    for serving in processes.slots:
        serving.ready.set()
    return processes, [theirs for _ours, theirs in channels]


def test_a_serving_process_silent_too_long_is_killed_the_others_asked() -> None:
    processes, theirs = two_running()
    answering, silent = processes.slots
    silent.heard = time.monotonic() - serving_module.LIVENESS_TIMEOUT_SECONDS - 1
    for serving in processes.slots:
        processes.check(serving)
    assert silent.process.killed and not answering.process.killed  # type: ignore[attr-defined]
    assert handoff.take(theirs[0]) == handoff.Handed(handoff.QUESTION, ("", 0), b"")
    assert not peek(theirs[1]), "the silent one is not asked"
    for channel in (*theirs, *(serving.channel for serving in processes.slots)):
        channel.close()


def peek(channel: socket.socket) -> bytes:
    try:
        return channel.recv(1 << 10, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return b""


def test_a_silent_serving_process_gets_no_new_connection_while_another_answers() -> None:
    """Until it is killed, connections go to the one that answers, even with more open."""
    processes, theirs = two_running()
    answering, silent = processes.slots
    answering.open = {101: "127.0.0.1", 102: "127.0.0.1"}
    silent.heard = time.monotonic() - 3 * serving_module.LIVENESS_INTERVAL_SECONDS
    ours, peer = socket.socketpair()
    with ours, peer:
        assert processes.hand(ours, ("127.0.0.1", 104), b"request", 10, 10) is None
    assert len(answering.open) == 3 and not silent.open
    for channel in (*theirs, *(serving.channel for serving in processes.slots)):
        channel.close()


def test_between_equals_a_request_goes_where_the_same_request_went_last() -> None:
    """A serving process keeps the requests it has seen decoded and answered: between processes as
    loaded, the same bytes go where they went last; the fewest associations open still comes first."""
    processes, theirs = two_running()
    first, second = processes.slots
    handed: list[int] = []
    for request, busy in ((b"getscu", None), (b"movescu", first), (b"getscu", None), (b"movescu", None)):
        if busy is not None:
            busy.open = {900: "127.0.0.1"}  # one association open there: the other one takes it
        ours, peer = socket.socketpair()
        with ours, peer:
            assert processes.hand(ours, ("127.0.0.1", 104), request, 10, 10) is None
        handed.append(next(serving.number for serving in processes.slots if set(serving.open) - {900}))
        for serving in processes.slots:
            serving.open.clear()
    assert handed == [first.number, second.number, first.number, second.number]
    for channel in (*theirs, *(serving.channel for serving in processes.slots)):
        channel.close()
