"""Fixtures shared by the DICOM unit tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


@pytest.fixture()
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected TCP pair on loopback (TCP_QUICKACK is a TCP option): (ours, theirs)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        theirs = socket.create_connection(server.getsockname())
        ours, _address = server.accept()
    with ours, theirs:
        yield ours, theirs
