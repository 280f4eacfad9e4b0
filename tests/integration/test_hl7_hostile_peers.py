"""The real `appliance-hl7` daemon against hostile and broken peers over real MLLP sockets: a flood
of 1,000 idle connections (from the RIS's own address, then from fifty others while the RIS's
address is trusted) neither starves the RIS nor grows the daemon's threads; values that cannot
become DICOM are answered AE with the field in ERR and nothing is stored; a frame whose MSH is bare
is answered AR and the connection goes on serving."""

from __future__ import annotations

import resource
import socket
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from hl7_client import MllpClient, ack_code, golden, replaced, segment_field
from servers import Daemon, archive_config, free_port, wait_for, write_config
from sqlalchemy import create_engine, func, select

from appliance.db.schema import patient, scheduled_step

FLOOD = 1000
WORKER_THREADS = 4  # appliance.hl7.listener.WORKER_THREADS: created on demand


def start(tmp_path: Path, **connections: object) -> Daemon:
    hl7: dict[str, object] = {"bind_address": "127.0.0.1", "port": 0}
    if connections:
        hl7["connections"] = connections
    config_path = write_config(tmp_path / "appliance.yaml", archive_config(tmp_path / "data", free_port(), hl7=hl7))
    return Daemon("appliance.daemons.hl7", config_path, tmp_path / "hl7.log").start()


@pytest.fixture()
def enough_descriptors() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < FLOOD + 200:
        pytest.skip(f"the test process may open only {hard} files")
    resource.setrlimit(
        resource.RLIMIT_NOFILE, (max(soft, FLOOD + 200) if hard == resource.RLIM_INFINITY else hard, hard)
    )


def flood(port: int, sources: list[str]) -> list[socket.socket]:
    """FLOOD connections that send nothing, from the `sources` addresses in turn (all of 127/8 is loopback)."""
    sockets = []
    for number in range(FLOOD):
        sock = socket.socket()
        sock.bind((sources[number % len(sources)], 0))
        sock.connect(("127.0.0.1", port))
        sockets.append(sock)
    return sockets


def measures(daemon: Daemon) -> tuple[int, float]:
    """The daemon's thread count and resident memory (MB)."""
    assert daemon.process is not None
    process = psutil.Process(daemon.process.pid)
    return process.num_threads(), process.memory_info().rss / 1e6


def a28(number: int) -> bytes:
    return replaced(golden("a28_utf8.hl7"), **{"A28-0001": f"A28-F{number}", "IPP1001": f"IPP9{number:03d}"})


def test_an_idle_flood_from_the_ris_address_neither_starves_it_nor_grows_threads(
    tmp_path: Path, enough_descriptors: None, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = start(tmp_path)
    try:
        with MllpClient(daemon.port) as established:
            assert ack_code(established.send(a28(1))) == "AA"
            threads_before, memory_before = measures(daemon)
            idle = flood(daemon.port, ["127.0.0.1"])
            try:
                wait_for(lambda: "refused" in daemon.log() or "to make room" in daemon.log(), "the flood refused")
                assert ack_code(established.send(a28(2))) == "AA"  # an answered connection is kept
                with MllpClient(daemon.port) as newcomer:  # a new one displaces an idle one
                    assert ack_code(newcomer.send(a28(3))) == "AA"
                threads_during, memory_during = measures(daemon)
            finally:
                for sock in idle:
                    sock.close()
        with capsys.disabled():
            print(f"\nHL7 idle flood of {FLOOD} from one address: threads {threads_before} -> {threads_during}, "
                  f"memory {memory_before:.1f} -> {memory_during:.1f} MB")  # fmt: skip
        assert threads_during <= threads_before + WORKER_THREADS
        assert memory_during - memory_before < 30
        log = daemon.log()
        refusals = log.count("to make room") + log.count("refused MLLP connection")
        assert 1 <= refusals <= 12  # about a thousand refusals, ten lines a minute
        assert "Traceback" not in log
    finally:
        daemon.stop()


def test_a_flood_from_fifty_addresses_leaves_the_trusted_ris_its_slots(
    tmp_path: Path, enough_descriptors: None, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = start(tmp_path, trusted_addresses=["127.0.0.1"], maximum=32, reserved=4, per_address=4)
    try:
        threads_before, memory_before = measures(daemon)
        idle = flood(daemon.port, [f"127.0.1.{number}" for number in range(1, 51)])
        try:
            wait_for(lambda: "refused" in daemon.log() or "to make room" in daemon.log(), "the flood refused")
            with MllpClient(daemon.port) as ris:
                assert ack_code(ris.send(a28(4))) == "AA"
            threads_during, memory_during = measures(daemon)
        finally:
            for sock in idle:
                sock.close()
        with capsys.disabled():
            print(f"\nHL7 idle flood of {FLOOD} from 50 addresses: threads {threads_before} -> {threads_during}, "
                  f"memory {memory_before:.1f} -> {memory_during:.1f} MB")  # fmt: skip
        assert threads_during <= threads_before + WORKER_THREADS
    finally:
        daemon.stop()


@pytest.fixture()
def hl7_daemon(tmp_path: Path) -> Iterator[Daemon]:
    daemon = start(tmp_path)
    yield daemon
    daemon.stop()


def test_values_that_cannot_become_dicom_are_answered_ae_and_nothing_is_stored(
    hl7_daemon: Daemon, tmp_path: Path
) -> None:
    order = golden("orm_zds_8859-15.hl7")
    with MllpClient(hl7_daemon.port) as client:
        wrong_uid = client.send(order.replace(b"1.2.250.999.1.20250601.1", b"1.2.abc'x"))
        wrong_birth_date = client.send(replaced(order, MSG0001="MSG0009").replace(b"|19790328|", b"|notadate|"))
    assert ack_code(wrong_uid) == "AE" and segment_field(wrong_uid, "ERR", 2) == "ZDS^1^1^1^1"
    assert ack_code(wrong_birth_date) == "AE" and segment_field(wrong_birth_date, "ERR", 2) == "PID^1^7"
    assert segment_field(wrong_uid, "ERR", 3).startswith("102^")
    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'index' / 'appliance.sqlite'}")
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(patient)) == 0
        assert connection.scalar(select(func.count()).select_from(scheduled_step)) == 0
    engine.dispose()


def test_a_bare_msh_frame_is_answered_and_the_connection_goes_on(hl7_daemon: Daemon) -> None:
    with MllpClient(hl7_daemon.port) as client:
        for bare in (b"MSH", b"MSH\rPID|1||X", b"MSH\nEVN|"):
            answer = client.send(bare)
            assert ack_code(answer) == "AR" and segment_field(answer, "ERR", 3).startswith("100^")
        assert ack_code(client.send(golden("a28_utf8.hl7"))) == "AA"
    log = hl7_daemon.log()
    assert "Traceback" not in log and "IndexError" not in log
    assert "unreadable frame from 127.0.0.1" in log
