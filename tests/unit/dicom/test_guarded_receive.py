"""`receive_into`: a PDU read whole into one buffer, however the peer's bytes arrive."""

from __future__ import annotations

import socket
import threading

from appliance.dicom.guarded_server import receive_into


def test_a_pdu_sent_in_pieces_is_read_whole_then_the_rest_waits() -> None:
    ours, peer = socket.socketpair()
    payload = bytes(range(256)) * 4096  # 1 MB, more than a socket buffer
    sender = threading.Thread(
        target=lambda: [peer.sendall(payload[start : start + 7001]) for start in range(0, len(payload), 7001)]
    )
    sender.start()
    try:
        assert receive_into(ours, 10) == bytearray(payload[:10])
        assert receive_into(ours, len(payload) - 10) == bytearray(payload[10:])
    finally:
        sender.join()
        ours.close()
        peer.close()


def test_a_peer_closing_early_gives_what_it_sent() -> None:
    ours, peer = socket.socketpair()
    peer.sendall(b"abcdef")
    peer.close()
    try:
        received = receive_into(ours, 100)
        assert received == bytearray(b"abcdef") and isinstance(received, bytearray)
        assert receive_into(ours, 6) == bytearray()
    finally:
        ours.close()
