"""The wire between the archive's acceptor and a serving process (`dicom.handoff`), in one process."""

from __future__ import annotations

import socket
import threading

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
    """Stands for a serving process that runs (`Popen.poll`)."""

    pid = 0

    def poll(self) -> None:
        return None


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
