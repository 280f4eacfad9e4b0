"""What every daemon does the same way once it is ready (and each console worker once it has built
its application): its start-up heap left out of the garbage collector's full passes."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.config import Settings, development_config
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
