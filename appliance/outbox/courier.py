"""Delivering a process's outbox channels: the next due message of a channel goes to that channel's
sender and the attempt is recorded. A daemon calls `deliver_next` again and again in a background
loop (`daemons.loops.Loop`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from sqlalchemy import Engine

from appliance.outbox.queue import (
    PARKED,
    Attempt,
    Message,
    Outcome,
    RetryPolicy,
    due_batch,
    next_due,
    record,
    record_batch,
)

LOGGER = logging.getLogger(__name__)

Sender = Callable[[Message], Attempt]
# Sends several messages of one channel at once (forwarding: one association for many instances);
# answers one attempt per message, in the same order.
BatchSender = Callable[[list[Message]], list[Attempt]]


class Courier:
    """Delivers the channels named in `senders` (by channel name, before any `:destination`), and
    those of `batch_senders` up to `batch_size` messages at a time."""

    def __init__(
        self,
        engine: Engine,
        senders: Mapping[str, Sender],
        policy: Callable[[str], RetryPolicy],
        batch_senders: Mapping[str, BatchSender] | None = None,
        batch_size: Callable[[], int] = lambda: 1,
    ) -> None:
        self.engine = engine
        self.senders = dict(senders)
        self.batch_senders = dict(batch_senders or {})
        self.policy = policy
        self.batch_size = batch_size

    def deliver_next(self) -> int:
        """Send the next due message (or batch), if any; how many messages were attempted."""
        message = next_due(self.engine, (*self.senders, *self.batch_senders))
        if message is None:
            return 0
        channel = message.channel.split(":", 1)[0]
        if channel in self.batch_senders:
            return self.deliver_batch(message, channel)
        try:
            attempt = self.senders[channel](message)
        except Exception as error:  # a sender's bug must not stop the queue: retried later
            LOGGER.exception("outbox %s: sending %s failed", message.channel, message.summary)
            attempt = Attempt(Outcome.NO_ANSWER, f"internal error: {type(error).__name__}")
        status = record(self.engine, message, attempt, self.policy(channel))
        log_attempt(message, attempt, status)
        return 1

    def deliver_batch(self, head: Message, channel: str) -> int:
        """`head` and the due messages behind it on its channel, through the channel's batch sender."""
        batch = due_batch(self.engine, head, self.batch_size())
        try:
            attempts = self.batch_senders[channel](batch)
        except Exception as error:  # a sender's bug must not stop the queue: retried later
            LOGGER.exception("outbox %s: sending %d message(s) failed", head.channel, len(batch))
            attempts = [Attempt(Outcome.NO_ANSWER, f"internal error: {type(error).__name__}")] * len(batch)
        statuses = record_batch(self.engine, list(zip(batch, attempts, strict=True)), self.policy(channel))
        log_batch(head.channel, batch, attempts, statuses)
        return len(batch)


def log_batch(channel: str, batch: list[Message], attempts: list[Attempt], statuses: list[str]) -> None:
    """One line for the batch; one more per message parked."""
    delivered = sum(attempt.outcome is Outcome.DELIVERED for attempt in attempts)
    if delivered == len(batch):
        LOGGER.info("outbox %s: delivered %d message(s)", channel, delivered)
    else:
        details = sorted({attempt.detail for attempt in attempts if attempt.outcome is not Outcome.DELIVERED})
        LOGGER.warning("outbox %s: %d of %d delivered: %s", channel, delivered, len(batch), "; ".join(details)[:500])
    for message, attempt, status in zip(batch, attempts, statuses, strict=True):
        if status == PARKED:
            log_attempt(message, attempt, status)


def log_attempt(message: Message, attempt: Attempt, status: str) -> None:
    if attempt.outcome is Outcome.DELIVERED:
        LOGGER.info("outbox %s: delivered %s", message.channel, message.summary)
    elif status == PARKED:
        LOGGER.error(
            "outbox %s: %s parked after %d refusal(s): %s (appliance outbox list)",
            message.channel,
            message.summary,
            message.refusals + 1,
            attempt.detail,
        )
    else:
        LOGGER.warning("outbox %s: %s not delivered (%s): %s", message.channel, message.summary,
                       attempt.outcome.value, attempt.detail)  # fmt: skip
