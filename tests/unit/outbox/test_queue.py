"""The outbox on a real index: one message per cause, in order per channel, backoff, parking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from appliance.outbox import (
    DELIVERED,
    PARKED,
    PENDING,
    Attempt,
    Outcome,
    RetryPolicy,
    Selection,
    channel_states,
    enqueue,
    listing,
    message,
    messages,
    next_due,
    record,
    retry,
)

POLICY = RetryPolicy(initial_seconds=5, maximum_seconds=40, refusals_before_parking=2)


def queue(engine: Engine, channel: str, cause: str) -> bool:
    with engine.begin() as connection:
        return enqueue(connection, channel, cause, "TEST", cause.encode(), f"message {cause}")


def test_a_cause_makes_one_message(engine: Engine) -> None:
    assert queue(engine, "hl7-ris", "change:1") is True
    assert queue(engine, "hl7-ris", "change:1") is False
    assert [message.cause for message in messages(engine, PENDING)] == ["change:1"]


def test_channels_go_in_order_and_do_not_wait_for_each_other(engine: Engine) -> None:
    for cause in ("a1", "a2"):
        queue(engine, "storage-commitment:CT1", cause)
    queue(engine, "storage-commitment:MR1", "b1")
    first = next_due(engine, ("storage-commitment",))
    assert first is not None and first.cause == "a1"
    record(engine, first, Attempt(Outcome.NO_ANSWER, "CT1 is off"), POLICY)  # CT1 waits 5 s ...
    second = next_due(engine, ("storage-commitment",))
    assert second is not None and second.cause == "b1"  # ... MR1 does not wait for it
    record(engine, second, Attempt(Outcome.DELIVERED), POLICY)
    assert next_due(engine, ("storage-commitment",)) is None  # a2 stays behind a1
    later = next_due(engine, ("storage-commitment",), datetime.now(UTC) + timedelta(seconds=6))
    assert later is not None and later.cause == "a1"
    assert next_due(engine, ("hl7-ris",)) is None


def test_backoff_doubles_up_to_the_maximum() -> None:
    assert [POLICY.delay(attempts).total_seconds() for attempts in (1, 2, 3, 4, 5)] == [5, 10, 20, 40, 40]


def test_refused_twice_is_parked_and_no_longer_blocks(engine: Engine) -> None:
    queue(engine, "hl7-ris", "refused")
    queue(engine, "hl7-ris", "next")
    moment = datetime.now(UTC) + timedelta(hours=1)
    for expected in (PENDING, PARKED):
        message = next_due(engine, ("hl7-ris",), moment)
        assert message is not None and message.cause == "refused"
        assert record(engine, message, Attempt(Outcome.REFUSED, "AE: unknown patient"), POLICY) == expected
    following = next_due(engine, ("hl7-ris",), moment)
    assert following is not None and following.cause == "next"
    assert record(engine, following, Attempt(Outcome.DELIVERED), POLICY) == DELIVERED
    (state,) = channel_states(engine)
    assert (state.channel, state.pending, state.parked) == ("hl7-ris", 0, 1)
    (parked,) = messages(engine, PARKED, "hl7-ris")
    assert parked.last_error == "AE: unknown patient" and parked.refusals == 2
    assert retry(engine, parked.id) is True and retry(engine, parked.id) is False
    again = next_due(engine, ("hl7-ris",))
    assert again is not None and again.cause == "refused" and again.refusals == 0


def test_no_answer_is_retried_without_limit(engine: Engine) -> None:
    queue(engine, "hl7-ris", "patient")
    moment = datetime.now(UTC)
    for _ in range(6):
        moment += timedelta(hours=1)
        message = next_due(engine, ("hl7-ris",), moment)
        assert message is not None
        assert record(engine, message, Attempt(Outcome.NO_ANSWER, "connection refused"), POLICY) == PENDING


def test_the_listing_filters_pages_by_id_and_leaves_the_payload_out(engine: Engine) -> None:
    for number in range(5):
        with engine.begin() as connection:
            kind = "ORM^O01" if number % 2 == 0 else "N-EVENT-REPORT"
            enqueue(connection, "hl7-ris", f"change:{number}", kind, b"MSH|payload", f"message {number}")
    first = listing(engine, Selection(), limit=2)
    assert [message.summary for message in first] == ["message 4", "message 3"]
    assert all(message.payload == b"" for message in first)
    second = listing(engine, Selection(), before_id=first[-1].id, limit=2)
    assert [message.summary for message in second] == ["message 2", "message 1"]
    assert [message.summary for message in listing(engine, Selection(kind="ORM"))] == [
        "message 4",
        "message 2",
        "message 0",
    ]
    assert listing(engine, Selection(kind="ORM%")) == []  # a type, not an SQL pattern
    assert listing(engine, Selection(status=PARKED)) == []
    now = datetime.now(UTC)
    assert len(listing(engine, Selection(since=now - timedelta(minutes=1), until=now + timedelta(minutes=1)))) == 5
    assert listing(engine, Selection(since=now + timedelta(minutes=1))) == []
    found = message(engine, first[0].id)
    assert found is not None and found.payload == b"MSH|payload"
    assert message(engine, 999) is None
