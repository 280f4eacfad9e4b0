"""What a guarded server prepares before a connection comes: the threads that run connections
(`Workers`) and the association of the next one (`Standby`)."""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.transport import RequestHandler

from appliance.config import Settings, development_config
from appliance.dicom import guarded_server, pynetdicom_patches
from appliance.dicom.guarded_server import (
    Guard,
    GuardedRequestHandler,
    GuardedServer,
    Workers,
    acceptor_association,
    connect,
)
from appliance.dicom.peers import AccessPolicy

VERIFICATION = "1.2.840.10008.1.1"
SECONDS = 10


class Recorder:
    """A `Workers` run that notes which thread ran each connection and holds it until released."""

    def __init__(self) -> None:
        self.ran: queue.SimpleQueue[tuple[str, threading.Thread]] = queue.SimpleQueue()
        self.release: dict[str, threading.Event] = {}

    def run(self, request: Any, _address: Any) -> None:
        self.ran.put((request, threading.current_thread()))
        self.release[request].wait(SECONDS)

    def submit(self, workers: Workers, name: str, held: bool = False) -> threading.Thread:
        """Submit `name`; the thread that runs it (released at once unless `held`)."""
        self.release[name] = threading.Event()
        if not held:
            self.release[name].set()
        workers.submit(name, None)
        ran, thread = self.ran.get(timeout=SECONDS)
        assert ran == name
        return thread


def idle_count(workers: Workers, expected: int) -> None:
    """Wait until `expected` threads are idle."""
    for _ in range(1000):
        with workers.lock:
            if workers.idle == expected:
                return
        threading.Event().wait(0.005)
    raise AssertionError(f"{workers.idle} idle threads, not {expected}")


def test_a_connection_goes_to_the_thread_that_finished_the_previous_one() -> None:
    recorder = Recorder()
    workers = Workers(recorder.run, "test-connection")
    first = recorder.submit(workers, "first")
    idle_count(workers, 1)
    assert recorder.submit(workers, "second") == first


def test_connections_at_once_each_get_a_thread_then_wait_for_the_next() -> None:
    recorder = Recorder()
    workers = Workers(recorder.run, "test-connection")
    threads = {recorder.submit(workers, name, held=True) for name in ("a", "b", "c")}
    assert len(threads) == 3 and workers.idle == 0
    for name in ("a", "b", "c"):
        recorder.release[name].set()
    idle_count(workers, 3)
    assert {recorder.submit(workers, name) for name in ("d", "e")} <= threads


def test_a_thread_idle_too_long_ends_and_a_new_one_is_started(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guarded_server, "WORKER_IDLE_SECONDS", 0.05)
    recorder = Recorder()
    workers = Workers(recorder.run, "test-connection")
    first = recorder.submit(workers, "first")
    idle_count(workers, 1)
    first.join(SECONDS)  # it gave up waiting
    assert not first.is_alive() and workers.idle == 0
    assert recorder.submit(workers, "later") is not first
    assert workers.waiting.empty()


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[GuardedServer]:
    """A guarded verification server in development mode (loopback callers admitted)."""
    pynetdicom_patches.apply()
    settings = Settings(lambda: development_config(tmp_path))
    ae = AE("ARCHIVE")
    ae.add_supported_context(VERIFICATION)
    guard = Guard("archive", settings, AccessPolicy(settings, "archive"))
    made = ae.make_server(("127.0.0.1", 0), server_class=GuardedServer, guard=guard)
    thread = threading.Thread(target=made.serve_forever, daemon=True)
    thread.start()
    yield made
    made.shutdown()
    thread.join(SECONDS)


def echo(server: GuardedServer) -> None:
    """One association with a C-ECHO, released; its end waited for (the next standby is built then)."""
    modality = AE("MODALITY")
    modality.add_requested_context(VERIFICATION)
    association = modality.associate("127.0.0.1", server.server_address[1], ae_title="ARCHIVE")
    assert association.is_established
    assert association.send_c_echo().Status == 0
    association.release()


def kept(server: GuardedServer) -> Association | None:
    """The association kept for the next connection, once the previous one has ended."""
    for _ in range(1000):
        with server.standby.lock:
            if server.standby.kept is not None:
                return server.standby.kept[1]
        threading.Event().wait(0.005)
    return None


def test_each_association_is_the_one_built_before_its_connection(
    server: GuardedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[Association] = []
    create = GuardedRequestHandler._create_association

    def recorded(handler: GuardedRequestHandler) -> Association:
        served.append(create(handler))
        return served[-1]

    monkeypatch.setattr(GuardedRequestHandler, "_create_association", recorded)
    for _ in range(3):
        ready = kept(server)
        assert ready is not None
        echo(server)
        assert served[-1] is ready
    assert kept(server) not in served


def test_a_handler_bound_after_the_standby_was_built_is_not_missed(server: GuardedServer) -> None:
    assert kept(server) is not None
    echoed = threading.Event()
    server.bind(evt.EVT_C_ECHO, lambda event: echoed.set() or 0)
    echo(server)
    assert echoed.is_set()


def test_an_association_built_ahead_is_the_one_pynetdicom_would_build(server: GuardedServer) -> None:
    ours, peer = socket.socketpair()
    theirs, peer_of_theirs = socket.socketpair()
    try:
        handler = RequestHandler.__new__(RequestHandler)
        handler.request, handler.client_address, handler.server = theirs, ("127.0.0.1", 104), server
        expected = RequestHandler._create_association(handler)
        built = acceptor_association(server)
        connect(built, ours, handler.local, handler.remote)
        for user in ("acceptor", "requestor"):
            mine, pynetdicom_s = getattr(built, user), getattr(expected, user)
            for name in ("maximum_length", "ae_title", "implementation_class_uid", "implementation_version_name",
                         "address", "port"):  # fmt: skip
                assert getattr(mine, name) == getattr(pynetdicom_s, name), (user, name)
        assert built.acceptor.supported_contexts == expected.acceptor.supported_contexts
        assert built._handlers == expected._handlers
        assert built.name.startswith("AcceptorThread@") and built._server is server
        assert built.dul.socket is not None and built.dul.socket.socket is ours
        assert built.dul.event_queue.get_nowait() == "Evt5"  # the transport connection, as pynetdicom queues it
    finally:
        for connection in (ours, peer, theirs, peer_of_theirs):
            connection.close()
