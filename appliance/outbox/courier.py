"""Delivering a process's outbox channels: the next due message of a channel goes to that channel's
sender and the attempt is recorded. A daemon calls `deliver_next` again and again in a background
loop (`daemons.loops.Loop`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from sqlalchemy import Engine

from appliance.outbox.queue import PARKED, Attempt, Message, Outcome, RetryPolicy, next_due, record

LOGGER = logging.getLogger(__name__)

Sender = Callable[[Message], Attempt]


class Courier:
    """Delivers the channels named in `senders` (by channel name, before any `:destination`)."""

    def __init__(self, engine: Engine, senders: Mapping[str, Sender], policy: Callable[[str], RetryPolicy]) -> None:
        self.engine = engine
        self.senders = dict(senders)
        self.policy = policy

    def deliver_next(self) -> int:
        """Send the next due message, if any; 1 when one was attempted, else 0."""
        message = next_due(self.engine, tuple(self.senders))
        if message is None:
            return 0
        channel = message.channel.split(":", 1)[0]
        try:
            attempt = self.senders[channel](message)
        except Exception as error:  # a sender's bug must not stop the queue: retried later
            LOGGER.exception("outbox %s: sending %s failed", message.channel, message.summary)
            attempt = Attempt(Outcome.NO_ANSWER, f"internal error: {type(error).__name__}")
        status = record(self.engine, message, attempt, self.policy(channel))
        log_attempt(message, attempt, status)
        return 1


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
