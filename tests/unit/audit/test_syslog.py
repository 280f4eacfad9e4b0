"""The syslog copy (RFC 5424) to loopback receivers started by the test: UDP datagrams, TCP with
octet counting, and a repository that is down (nothing lost, sent once it is back)."""

from __future__ import annotations

import re
import socket
import threading
from pathlib import Path
from xml.etree import ElementTree

import pytest

from appliance.audit.events import Action, AuditEvent, EventId, Outcome, ae
from appliance.audit.message import AuditSource
from appliance.audit.syslog import SyslogForwarder
from appliance.audit.trail import AuditTrail
from appliance.config.loader import SyslogConfig

SOURCE = AuditSource("pacs-box-0001", "Cabinet")
HEADER = re.compile(rb"^<(\d+)>1 (\S+Z) pacs-box-0001 appliance - IHE\+RFC-3881 - (<\?xml.*)$", re.DOTALL)


def query(outcome: Outcome = Outcome.SUCCESS) -> AuditEvent:
    return AuditEvent(EventId.QUERY, Action.EXECUTE, outcome, (ae("FINDSCU", "10.0.0.2", True),))


@pytest.fixture()
def trail(tmp_path: Path) -> AuditTrail:
    opened = AuditTrail(tmp_path / "audit.sqlite")
    opened.record(query())
    opened.record(query(Outcome.MINOR_FAILURE))
    return opened


def check(message: bytes, priority: int) -> None:
    found = HEADER.match(message)
    assert found is not None, message[:120]
    assert int(found.group(1)) == priority
    assert ElementTree.fromstring(found.group(3)).tag == "AuditMessage"


def test_udp_one_datagram_per_record(trail: AuditTrail) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(10)
        port = receiver.getsockname()[1]
        forwarder = SyslogForwarder(trail, SyslogConfig("127.0.0.1", port, "udp"), SOURCE)
        assert forwarder.forward() == 2
        check(receiver.recv(65536), 85)  # authpriv.notice
        check(receiver.recv(65536), 84)  # authpriv.warning for a failure
    assert forwarder.forward() == 0 and trail.cursor("syslog") == 2


def read_frames(connection: socket.socket, count: int) -> list[bytes]:
    """Octet-counted frames (RFC 6587 3.4.1): `LENGTH SP MESSAGE`."""
    data, frames = b"", []
    while len(frames) < count:
        chunk = connection.recv(65536)
        assert chunk, "connection closed early"
        data += chunk
        while b" " in data:
            length_text, rest = data.split(b" ", 1)
            if len(rest) < int(length_text):
                break
            frames.append(rest[: int(length_text)])
            data = rest[int(length_text) :]
    return frames


def test_tcp_octet_counted_and_resumed_after_an_outage(trail: AuditTrail) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # the repository is down
    forwarder = SyslogForwarder(trail, SyslogConfig("127.0.0.1", port, "tcp"), SOURCE)
    assert forwarder.forward() == 0 and trail.cursor("syslog") == 0
    trail.record(query())
    frames: list[bytes] = []
    with socket.create_server(("127.0.0.1", port)) as listener:
        accepted = threading.Thread(target=lambda: frames.extend(read_frames(listener.accept()[0], 3)))
        accepted.start()
        forwarder.retry_at = 0.0
        assert forwarder.forward() == 3
        accepted.join(timeout=10)
    forwarder.close()
    assert len(frames) == 3
    for frame, priority in zip(frames, (85, 84, 85), strict=True):
        check(frame, priority)
