"""What every daemon does the same way once it is ready: its start-up heap left out of the garbage
collector's full passes."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from appliance.daemons.runtime import settle_heap


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
