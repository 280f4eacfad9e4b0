"""The thread that delivers a process's outbox channels: the next due message of a channel goes to
that channel's sender, the attempt is recorded, and so on until the process stops."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from sqlalchemy import Engine

from appliance.outbox.queue import PARKED, Attempt, Message, Outcome, RetryPolicy, next_due, record

LOGGER = logging.getLogger(__name__)

IDLE_SECONDS = 1.0
Sender = Callable[[Message], Attempt]


class Courier:
    """Delivers the channels named in `senders` (by channel name, before any `:destination`)."""

    def __init__(
        self, engine: Engine, senders: Mapping[str, Sender], policy: Callable[[str], RetryPolicy], name: str
    ) -> None:
        self.engine = engine
        self.senders = dict(senders)
        self.policy = policy
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Let the attempt in flight finish, then stop."""
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout=60)

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                delivered = self.deliver_next()
            except Exception:  # outermost loop of the thread: log and keep going
                LOGGER.exception("outbox delivery")
                delivered = False
            if not delivered:
                self.stopping.wait(IDLE_SECONDS)

    def deliver_next(self) -> bool:
        """Send the next due message, if any; True when one was attempted."""
        message = next_due(self.engine, tuple(self.senders))
        if message is None:
            return False
        channel = message.channel.split(":", 1)[0]
        try:
            attempt = self.senders[channel](message)
        except Exception as error:  # a sender's bug must not stop the queue: retried later
            LOGGER.exception("outbox %s: sending %s failed", message.channel, message.summary)
            attempt = Attempt(Outcome.NO_ANSWER, f"internal error: {type(error).__name__}")
        status = record(self.engine, message, attempt, self.policy(channel))
        log_attempt(message, attempt, status)
        return True


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
