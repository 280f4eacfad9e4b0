"""Refusals are logged one WARNING line each, at most `burst` a period; the rest are counted."""

from __future__ import annotations

import logging

import pytest

from appliance.hl7.refusals import RefusalLog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_writes_a_few_lines_and_the_count(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    refusals = RefusalLog(burst=3, period=60, clock=clock)
    logger = logging.getLogger("test.refusals")
    with caplog.at_level(logging.WARNING, "test.refusals"):
        written = [refusals.warning(logger, "refused connection %d", number) for number in range(1000)]
        refusals.flush()  # the period is not over: nothing yet
        clock.now = 61
        refusals.flush()
        refusals.flush()  # said once
        clock.now = 62
        refusals.warning(logger, "refused connection %d", 1000)
    assert written.count(True) == 3
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "refused connection 0",
        "refused connection 1",
        "refused connection 2",
        "997 more refusal(s) not logged in the last 60 s",
        "refused connection 1000",
    ]
    assert all(record.levelno == logging.WARNING for record in caplog.records)


def test_the_count_goes_with_the_next_line(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    refusals = RefusalLog(burst=1, period=10, clock=clock)
    logger = logging.getLogger("test.refusals")
    with caplog.at_level(logging.WARNING, "test.refusals"):
        for _ in range(5):
            refusals.warning(logger, "refused")
        clock.now = 10
        refusals.warning(logger, "refused")
    assert [record.getMessage() for record in caplog.records] == [
        "refused",
        "refused (and 4 refusal(s) not logged before)",
    ]
