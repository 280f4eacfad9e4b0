"""The archive daemon with serving processes (`dicom.processes: 2`, issue 14; A5): its own process
accepts and admits, two serving processes run the associations. Real daemon, pynetdicom peers.

What must hold as with one process: associations spread over both, the per-address and total
limits across them, a reload reaching them, a crashed or hung one replaced, and nothing left running
when the daemon is killed outright."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from datagen import PATIENTS, make_instance
from dicom_wire import rejection
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]
from servers import Daemon, archive_config, associate, wait_for, write_config

from appliance.daemons.serving import LIVENESS_TIMEOUT_SECONDS

SUCCESS = 0x0000
NOT_AUTHORIZED = 0x0124
LOCAL_LIMIT_EXCEEDED = (2, 3, 2)  # A-ASSOCIATE-RJ: transient, service provider (presentation), local limit


def configured(tmp_path: Path, **dicom: Any) -> tuple[Path, dict[str, Any]]:
    config = archive_config(tmp_path / "data", 1, dicom={"processes": 2, **dicom})
    return write_config(tmp_path / "archive.yaml", config), config


@pytest.fixture()
def archive(tmp_path: Path) -> Iterator[Daemon]:
    config_path, _ = configured(tmp_path, maximum_associations_per_address=3)
    daemon = Daemon("appliance.daemons.archive", config_path, tmp_path / "archive.log").start()
    try:
        yield daemon
    finally:
        daemon.stop()


def serving_processes(daemon: Daemon) -> list[psutil.Process]:
    assert daemon.process is not None
    return psutil.Process(daemon.process.pid).children()


def peers_served_by(process: psutil.Process, port: int) -> int:
    """Established TCP connections of `process` on the archive's port."""
    return sum(
        1
        for connection in process.net_connections(kind="tcp")
        if connection.laddr and connection.laddr.port == port and connection.status == psutil.CONN_ESTABLISHED
    )


def test_associations_are_spread_over_the_serving_processes_and_store(archive: Daemon) -> None:
    assert len(serving_processes(archive)) == 2
    associations = [associate(archive.port, Verification, CTImageStorage) for _ in range(2)]
    try:
        assert all(association.is_established for association in associations)
        served = sorted(peers_served_by(process, archive.port) for process in serving_processes(archive))
        assert served == [1, 1], "each serving process runs one of the two associations"
        for number, association in enumerate(associations):
            assert association.send_c_store(make_instance("CT", PATIENTS[number])).Status == SUCCESS
        assert peers_served_by(psutil.Process(archive.process.pid), archive.port) == 0  # type: ignore[union-attr]
    finally:
        for association in associations:
            association.release()


def test_the_per_address_limit_holds_across_processes_and_frees_at_release(archive: Daemon) -> None:
    associations = [associate(archive.port, Verification) for _ in range(3)]
    try:
        assert all(association.is_established for association in associations)
        assert rejection(archive.port, "PYNETDICOM") == LOCAL_LIMIT_EXCEEDED
        associations.pop().release()
        wait_for(lambda: associate_and_release(archive.port), "the released association's place to be free")
    finally:
        for association in associations:
            association.release()
    assert "3 associations already open from 127.0.0.1" in archive.log()


def associate_and_release(port: int) -> bool:
    association = associate(port, Verification)
    if not association.is_established:
        return False
    association.release()
    return True


def test_the_total_limit_holds_across_processes(tmp_path: Path) -> None:
    config_path, _ = configured(tmp_path, maximum_associations=2)
    daemon = Daemon("appliance.daemons.archive", config_path, tmp_path / "archive.log").start()
    associations = []
    try:
        associations = [associate(daemon.port, Verification) for _ in range(2)]
        assert all(association.is_established for association in associations)
        assert rejection(daemon.port, "PYNETDICOM") == LOCAL_LIMIT_EXCEEDED
    finally:
        for association in associations:
            association.release()
        daemon.stop()
    assert "2 associations already open" in daemon.log()


def test_a_reload_reaches_the_serving_processes(tmp_path: Path) -> None:
    """QUERYONLY may not store; given the store right and SIGHUP, its next C-STORE is accepted by
    whichever serving process runs it."""
    config_path, config = configured(tmp_path)
    daemon = Daemon("appliance.daemons.archive", config_path, tmp_path / "archive.log").start()
    try:
        for number in range(2):
            association = associate(daemon.port, CTImageStorage, ae_title="QUERYONLY")
            assert association.send_c_store(make_instance("CT", PATIENTS[number])).Status == NOT_AUTHORIZED
            association.release()
        for peer in config["peers"]:
            if peer["ae_title"] == "QUERYONLY":
                peer["rights"] = ["query", "store"]
        config_path.write_text(yaml.safe_dump(config))
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(lambda: daemon.log().count("configuration reloaded") >= 3, "the daemon and both serving processes")
        for number in range(2):
            association = associate(daemon.port, CTImageStorage, ae_title="QUERYONLY")
            assert association.send_c_store(make_instance("CT", PATIENTS[number])).Status == SUCCESS
            association.release()
    finally:
        daemon.stop()


def test_a_serving_process_that_dies_is_replaced(archive: Daemon) -> None:
    first, second = serving_processes(archive)
    association = associate(archive.port, Verification)
    assert association.is_established
    victim = next(process for process in (first, second) if peers_served_by(process, archive.port))
    victim.kill()
    wait_for(lambda: len(serving_processes(archive)) == 2 and victim not in serving_processes(archive),
             "a new serving process")  # fmt: skip
    wait_for(lambda: associate_and_release(archive.port), "the archive to serve again")
    for number in range(4):  # both processes take associations again
        assert associate_and_release(archive.port), f"association {number}"
    association.abort()
    assert "1 association(s) cut: starting another" in archive.log()


def test_a_serving_process_that_hangs_is_killed_and_replaced(archive: Daemon) -> None:
    """A serving process stopped (SIGSTOP) ends no association and answers no liveness question:
    within `LIVENESS_TIMEOUT_SECONDS` it is killed and replaced, and meanwhile new associations go
    to the other one."""
    first, second = serving_processes(archive)
    hung = associate(archive.port, Verification)
    assert hung.is_established
    victim = first if peers_served_by(first, archive.port) else second
    victim.suspend()
    try:
        wait_for(lambda: "has not answered for" in archive.log(), "the hung serving process to be found out",
                 LIVENESS_TIMEOUT_SECONDS + 30)  # fmt: skip
        wait_for(lambda: len(serving_processes(archive)) == 2 and victim not in serving_processes(archive),
                 "a new serving process")  # fmt: skip
    finally:
        if victim.is_running():
            victim.kill()
    for number in range(4):
        assert associate_and_release(archive.port), f"association {number}"
    hung.abort()
    assert "1 association(s) cut: starting another" in archive.log()


def test_killing_the_daemon_outright_leaves_no_serving_process(archive: Daemon) -> None:
    children = serving_processes(archive)
    assert archive.process is not None
    os.kill(archive.process.pid, signal.SIGKILL)
    archive.process.wait()
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive and len(gone) == 2
