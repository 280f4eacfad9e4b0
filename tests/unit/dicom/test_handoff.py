"""The wire between the archive's acceptor and a serving process (`dicom.handoff`), in one process."""

from __future__ import annotations

import socket
import threading

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
