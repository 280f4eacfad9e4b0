"""Broken and hostile peers cannot close the archive or the worklist to the modalities (issue 15; A1,
A6, W1, S2): port scans, half-open connections, huge PDU headers, floods from another address,
garbage; each runs against the real daemon in a few seconds.

Another machine is played from 127.0.0.2 (Linux routes all of 127/8 to loopback)."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from datagen import PATIENTS, make_instance
from dicom_wire import (
    EXPLICIT_LITTLE,
    IMPLICIT_LITTLE,
    associate_request,
    closed_by_peer,
    connect,
    read_pdu,
    with_calling,
    with_context_id,
)
from pynetdicom import AE
from pynetdicom.sop_class import ComputedRadiographyImageStorage, Verification  # type: ignore[attr-defined]
from servers import Daemon, archive_config, wait_for, write_config

from appliance.config import load_config
from appliance.db import create_index_engine, upgrade_schema

SUCCESS = 0x0000
ANOTHER_MACHINE = "127.0.0.2"
AT_ONCE_SECONDS = 5.0  # the modality's own ACSE and DIMSE timeouts: a held slot fails well before
MEGABYTE = 1024 * 1024


def echo_and_store(port: int, calling: str = "STORESCU", store: bool = True) -> None:
    """A configured modality: C-ECHO then C-STORE of one CR image, each answered with success."""
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = AT_ONCE_SECONDS
    ae.add_requested_context(Verification)
    ae.add_requested_context(ComputedRadiographyImageStorage)
    started = time.monotonic()
    assoc = ae.associate("127.0.0.1", port, ae_title="APPLIANCE")
    assert assoc.is_established, "the modality's association was not accepted"
    try:
        assert assoc.send_c_echo().Status == SUCCESS
        if store:
            assert assoc.send_c_store(make_instance("CR", PATIENTS[0])).Status == SUCCESS
    finally:
        assoc.release()
    assert time.monotonic() - started < AT_ONCE_SECONDS


def memory_of(daemon: Daemon) -> int:
    assert daemon.process is not None
    process = psutil.Process(daemon.process.pid)
    return sum(int(each.memory_info().rss) for each in [process, *process.children()])


def threads_of(daemon: Daemon) -> int:
    assert daemon.process is not None
    process = psutil.Process(daemon.process.pid)
    return sum(int(each.num_threads()) for each in [process, *process.children()])


@pytest.fixture()
def worklist(tmp_path: Path) -> Iterator[Daemon]:
    config: dict[str, Any] = archive_config(tmp_path / "data", 1)
    config["worklist"] = {"bind_address": "127.0.0.1", "port": 0}
    config_path = write_config(tmp_path / "worklist.yaml", config)
    loaded = load_config(config_path)
    engine = create_index_engine(loaded.database_url)
    upgrade_schema(engine, loaded.storage.index_directory)
    engine.dispose()
    daemon = Daemon("appliance.daemons.worklist", config_path, tmp_path / "worklist.log").start()
    yield daemon
    daemon.stop()


def test_connect_and_close_leaves_every_slot_free(archive: Daemon) -> None:
    for _ in range(40):
        connect(archive.port).close()
    echo_and_store(archive.port)
    assert "Traceback" not in archive.log()


@pytest.mark.parametrize("daemon_name", ["archive", "worklist"])
def test_half_open_connections_do_not_lock_the_port(daemon_name: str, request: pytest.FixtureRequest) -> None:
    daemon: Daemon = request.getfixturevalue(daemon_name)
    stalled = [connect(daemon.port) for _ in range(40)]
    for connection in stalled:
        connection.sendall(b"\x01\x00\x00")  # 3 bytes of a PDU header, then nothing
    try:
        echo_and_store(daemon.port, store=daemon_name == "archive")
    finally:
        for connection in stalled:
            connection.close()


def flood_huge_pdu(port: int, first: bytes) -> bool:
    """Send `first` announcing 256 MB then stream zeros until the daemon closes; whether it did
    before 16 MB had gone."""
    with connect(port) as connection:
        connection.sendall(first)
        zeros = bytes(MEGABYTE)
        try:
            for _ in range(16):
                connection.sendall(zeros)
        except OSError:
            return True
        return closed_by_peer(connection)


def test_a_256_mb_pdu_from_an_unknown_ae_is_not_read(archive: Daemon) -> None:
    request = with_calling(associate_request("STRANGER"), b"STRANGER")
    huge_request = b"\x01\x00" + struct.pack(">I", 256 * MEGABYTE) + request[6:74]
    huge_data = b"\x04\x00" + struct.pack(">I", 256 * MEGABYTE)
    echo_and_store(archive.port)  # the daemon's memory once it has served a modality
    before = memory_of(archive)
    outcomes: list[bool] = []
    senders = [
        threading.Thread(target=lambda first=first: outcomes.append(flood_huge_pdu(archive.port, first)))
        for first in (huge_request, huge_request, huge_data, huge_data)
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    grown = memory_of(archive) - before
    assert outcomes == [True] * 4
    assert grown < 8 * MEGABYTE, f"the archive grew by {grown / MEGABYTE:.1f} MB"
    echo_and_store(archive.port)


def test_a_configured_peer_cannot_send_a_pdu_over_the_announced_maximum(archive: Daemon) -> None:
    before = memory_of(archive)
    with connect(archive.port) as connection:
        connection.sendall(associate_request("STORESCU"))
        accepted = read_pdu(connection)
        assert accepted[:1] == b"\x02"
        connection.sendall(b"\x04\x00" + struct.pack(">I", 256 * MEGABYTE) + bytes(4096))
        assert read_pdu(connection)[:1] == b"\x07"  # A-ABORT
    assert memory_of(archive) - before < 8 * MEGABYTE
    wait_for(lambda: "PDU of 268435456 bytes (at most 1048576)" in archive.log(), "the log line", 10)
    echo_and_store(archive.port)


def test_an_unknown_peer_flooding_connections_does_not_stop_a_configured_one(archive: Daemon) -> None:
    stop = threading.Event()
    held: list[socket.socket] = []

    def flood() -> None:
        while not stop.is_set():
            try:
                connection = connect(archive.port, ANOTHER_MACHINE)
                connection.sendall(os.urandom(3))
                held.append(connection)  # half-open: kept until the end
                connect(archive.port, ANOTHER_MACHINE).close()  # and a port scan
            except OSError:
                continue

    flooder = threading.Thread(target=flood)
    flooder.start()
    try:
        for _ in range(5):
            echo_and_store(archive.port)
        threads = threads_of(archive)
    finally:
        stop.set()
        flooder.join()
        for connection in held:
            connection.close()
    assert len(held) > 40
    assert threads < 80, f"{threads} threads in the archive"


def test_garbage_is_one_warning_line_each_rate_limited(archive: Daemon) -> None:
    for _ in range(60):
        with connect(archive.port) as connection:
            connection.sendall(b"\x47\x45\x54 / HTTP/1.0\r\n\r\n" + os.urandom(512))
            closed_by_peer(connection)
    echo_and_store(archive.port)
    log = archive.log()
    refused = [line for line in log.splitlines() if "connection from 127.0.0.1 refused" in line]
    assert 1 <= len(refused) <= 21 and all("WARNING" in line for line in refused)
    assert "Traceback" not in log and " ERROR " not in log


def test_an_even_presentation_context_id_is_aborted_at_once(archive: Daemon) -> None:
    with connect(archive.port) as connection:
        connection.sendall(with_context_id(associate_request("STORESCU"), 2))
        assert read_pdu(connection, timeout=AT_ONCE_SECONDS)[:1] == b"\x07"
        assert closed_by_peer(connection, timeout=AT_ONCE_SECONDS)
    wait_for(lambda: "malformed association request" in archive.log(), "the log line", 10)
    echo_and_store(archive.port)


def test_a_blank_calling_ae_is_rejected_and_logged(archive: Daemon) -> None:
    with connect(archive.port) as connection:
        connection.sendall(with_calling(associate_request("STORESCU"), b" " * 16))
        rejection = read_pdu(connection)
    assert rejection[:1] == b"\x03" and tuple(rejection[7:10]) == (1, 1, 3)
    wait_for(
        lambda: (
            "archive association from (blank) (127.0.0.1) rejected: blank or invalid calling AE title" in archive.log()
        ),
        "the log line",
        10,
    )


def test_an_unknown_ae_reads_its_rejection_even_when_it_reads_late(archive: Daemon) -> None:
    """The daemon reads only the start of an unknown caller's request; the rest must not turn its
    close into a reset that destroys the A-ASSOCIATE-RJ before a busy or slow peer reads it."""
    syntaxes = (EXPLICIT_LITTLE, IMPLICIT_LITTLE)
    contexts = tuple((f"1.2.840.10008.5.1.4.1.1.{number}", syntaxes) for number in range(1, 128))
    request = associate_request("INTRUDER", contexts=contexts)
    assert len(request) > 9000  # far more than the part read before the calling AE title is known
    with connect(archive.port) as connection:
        connection.sendall(request)
        # The daemon logs the rejection once it has closed the connection: the peer reads only now.
        wait_for(lambda: "association from INTRUDER (127.0.0.1) rejected" in archive.log(), "the rejection", 10)
        rejection = read_pdu(connection)
    assert rejection[:1] == b"\x03"


def test_one_address_cannot_take_every_association(tmp_path: Path) -> None:
    config = archive_config(tmp_path / "data", 1, dicom={"maximum_associations_per_address": 2})
    daemon = Daemon("appliance.daemons.archive", write_config(tmp_path / "a.yaml", config), tmp_path / "log").start()
    try:
        ae = AE(ae_title="ECHOSCU")
        ae.add_requested_context(Verification)
        first, second = (ae.associate("127.0.0.1", daemon.port, ae_title="APPLIANCE") for _ in range(2))
        assert first.is_established and second.is_established  # the third is refused (raw, below)
        with connect(daemon.port) as connection:
            connection.sendall(associate_request("ECHOSCU"))
            assert tuple(read_pdu(connection)[7:10]) == (2, 3, 2)  # transient, local limit exceeded
        first.release()
        second.release()
        wait_for(lambda: "2 associations already open from 127.0.0.1" in daemon.log(), "the log line", 10)
    finally:
        daemon.stop()
