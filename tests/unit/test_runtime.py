"""What every daemon does the same way once it is ready (and each console worker once it has built
its application): its start-up heap left out of the garbage collector's full passes, and its lines
said in one write each."""

from __future__ import annotations

import gc
import io
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.config import Settings, development_config
from appliance.daemons import runtime
from appliance.daemons.runtime import settle_heap
from appliance.daemons.web import ConsoleServer
from appliance.db import create_index_engine, upgrade_schema


@pytest.fixture()
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("thawed")
def test_what_start_up_built_is_left_out_of_full_collections_and_later_garbage_is_still_collected() -> None:
    built = [[number] for number in range(100_000)]  # containers, as pydicom's dictionaries are
    settle_heap()
    assert gc.get_freeze_count() >= len(built)
    walked = {id(one) for one in gc.get_objects(generation=2)}
    assert not any(id(one) in walked for one in built[:1000])
    gc.collect()
    later: list[object] = []
    later.append(later)  # a cycle made after start-up
    del later
    assert gc.collect() >= 1  # collected as before


@pytest.mark.usefixtures("thawed")
def test_each_console_worker_leaves_its_application_out_of_full_collections(tmp_path: Path) -> None:
    """gunicorn builds the application in each worker after the fork (`ConsoleServer.load`)."""
    config = development_config(tmp_path / "data")
    engine = create_index_engine(config.database_url)
    upgrade_schema(engine)
    engine.dispose()
    server = ConsoleServer(Settings(lambda: config))
    try:
        application = server.load()
        assert gc.get_freeze_count() > 0
        assert not any(one is application for one in gc.get_objects(generation=2))
    finally:
        server.worker_exit(None, None)


class StoppedSignals:
    """`systemd.Signals` as a SIGTERM received at once leaves it: `serve` returns after its first wait."""

    received = signal.SIGTERM
    stopping = True

    def install(self, _actions: object = None) -> None:
        pass

    def wait(self, _timeout: float | None) -> None:
        pass


def test_a_daemon_says_where_it_listens_once_its_heap_is_settled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Printed before `settle_heap`, the line sent clients in while the collector held the
    interpreter: an `echoscu` right after the archive's line took 74 ms instead of 24."""
    done: list[str] = []
    monkeypatch.setattr(runtime.systemd, "Signals", StoppedSignals)
    monkeypatch.setattr(runtime, "settle_heap", lambda: done.append(f"settled, printed: {capsys.readouterr().out!r}"))
    monkeypatch.setattr(runtime.systemd, "notify", lambda state: done.append(state.split("\n")[0]))
    config = development_config(tmp_path)
    served = runtime.Runtime(Settings(lambda: config), create_index_engine(config.database_url))
    assert runtime.serve(served, lambda: True, "test", announcement="test listening on 127.0.0.1:1") == 0
    assert done == ["settled, printed: ''", "READY=1", "STOPPING=1"]
    assert capsys.readouterr().out == "test listening on 127.0.0.1:1\n"


class Writes(io.RawIOBase):
    """An unbuffered output, as Python's standard output is under PYTHONUNBUFFERED: each write kept."""

    def __init__(self) -> None:
        self.made: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        chunk = bytes(data)  # type: ignore[call-overload]
        self.made.append(chunk)
        return len(chunk)


def test_a_daemon_says_each_line_in_one_write_so_that_the_lines_of_two_daemons_cannot_join() -> None:
    raw = Writes()
    output = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)  # type: ignore[arg-type]
    print("worklist APPLIANCE_MWL listening on 127.0.0.1:38247", file=output, flush=True)
    assert len(raw.made) == 2  # what made `make run` print "...:38247HL7 listener listening on ..."
    raw.made.clear()
    runtime.announce("worklist APPLIANCE_MWL listening on 127.0.0.1:38247", output)
    runtime.announce("line one\nline two", output)
    assert raw.made == [b"worklist APPLIANCE_MWL listening on 127.0.0.1:38247\n", b"line one\nline two\n"]
