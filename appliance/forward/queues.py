"""The forwarding queues: one outbox channel per destination (`forward:<AE>`), one message per
instance and destination (its cause is the instance: an instance is never queued twice for one
destination), and what the console shows of them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine

from appliance.outbox import PARKED, PENDING, Message, channel_states, enqueue, messages, retry_channel

CHANNEL = "forward"
KIND = "C-STORE"


@dataclass(frozen=True)
class Forwarded:
    """What one forwarding message names: an archived instance (never patient data)."""

    sop_instance_uid: str
    study_instance_uid: str


@dataclass(frozen=True)
class QueueState:
    """One destination's queue: waiting, set aside (refused), since when it waits, the last reason."""

    destination: str
    pending: int
    parked: int
    oldest_pending: datetime | None


def channel_of(destination: str) -> str:
    return f"{CHANNEL}:{destination}"


def destination_of(channel: str) -> str:
    return channel.split(":", 1)[1] if ":" in channel else ""


def queue(connection: Connection, destination: str, forwarded: Forwarded, rule: str) -> bool:
    """Queue one instance for `destination`, inside the caller's transaction; False when it was
    queued for that destination before (sent or not)."""
    payload = json.dumps({"sop_instance_uid": forwarded.sop_instance_uid,
                          "study_instance_uid": forwarded.study_instance_uid}).encode()  # fmt: skip
    summary = f"instance of study {forwarded.study_instance_uid} ({rule})"
    return enqueue(connection, channel_of(destination), f"instance:{forwarded.sop_instance_uid}", KIND, payload,
                   summary)  # fmt: skip


def forwarded_of(message: Message) -> Forwarded:
    document = json.loads(message.payload)
    return Forwarded(str(document["sop_instance_uid"]), str(document["study_instance_uid"]))


def queue_states(engine: Engine, destinations: list[str]) -> list[QueueState]:
    """Every destination named (configured in a rule) and every one with messages waiting or set
    aside, by AE title."""
    found = {
        destination_of(state.channel): QueueState(
            destination_of(state.channel), state.pending, state.parked, state.oldest_pending
        )
        for state in channel_states(engine)
        if state.channel.startswith(f"{CHANNEL}:")
    }
    for destination in destinations:
        found.setdefault(destination, QueueState(destination, 0, 0, None))
    return [found[name] for name in sorted(found)]


def waiting(engine: Engine, destination: str, limit: int = 100) -> tuple[list[Message], list[Message]]:
    """The messages of one destination still waiting and those set aside, newest first."""
    channel = channel_of(destination)
    return messages(engine, PENDING, channel, limit), messages(engine, PARKED, channel, limit)


def retry_now(engine: Engine, destination: str) -> int:
    """Everything waiting or set aside for `destination` is due now; how many messages."""
    return retry_channel(engine, channel_of(destination))
