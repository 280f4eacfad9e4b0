"""The outbox: one durable queue, in the index, for everything delivered later with retries.

Producers `enqueue` a message inside the transaction of its cause (a workflow change for the RIS, a
storage commitment checked, a study to forward), naming the channel that delivers it. A `Courier`
in the process owning a channel sends its messages in order, one at a time, through the channel's
sender, and records each attempt: delivered; no answer (retried with exponential backoff, for as long
as it takes); or refused by the receiver (retried a few times, then *parked*: set aside so that it no
longer blocks the messages behind it). Parked messages are listed by `appliance outbox list`, can be
sent again with `appliance outbox retry` or from the console's message log, and are a finding for
the health monitor.
"""

from appliance.outbox.queue import (
    DELIVERED,
    PARKED,
    PENDING,
    Attempt,
    ChannelState,
    Message,
    Outcome,
    RetryPolicy,
    Selection,
    channel_states,
    due_batch,
    enqueue,
    listing,
    message,
    messages,
    next_due,
    record,
    record_batch,
    retry,
    retry_channel,
)

__all__ = [
    "DELIVERED",
    "PARKED",
    "PENDING",
    "Attempt",
    "ChannelState",
    "Message",
    "Outcome",
    "RetryPolicy",
    "Selection",
    "channel_states",
    "due_batch",
    "enqueue",
    "listing",
    "message",
    "messages",
    "next_due",
    "record",
    "record_batch",
    "retry",
    "retry_channel",
]
