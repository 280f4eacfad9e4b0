"""Findings about the outbox: parked messages (refused by their receiver: someone must look), and
messages waiting longer than they should (the receiver has been unreachable for a while)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from appliance.monitor.findings import Finding, Reading, Severity
from appliance.monitor.sources import Context
from appliance.outbox import ChannelState, channel_states

LATE_AFTER = timedelta(hours=1)


def check(engine: Engine, now: datetime | None = None) -> list[Finding]:
    """One finding per channel with parked messages or waiting for over an hour, else OK."""
    moment = now or datetime.now(UTC)
    return [channel_finding(state, moment) for state in channel_states(engine)]


def read(context: Context) -> Reading:
    """The outbox as a monitor source."""
    return Reading(check(context.engine, context.now))


def channel_finding(state: ChannelState, moment: datetime) -> Finding:
    channel, parked, pending, oldest = state.channel, state.parked, state.pending, state.oldest_pending
    detail = f"{pending} pending, {parked} parked (appliance outbox list)"
    if parked:
        message = f"{parked} message(s) refusé(s) par le destinataire et mis de côté : le prestataire doit regarder."
        return Finding("outbox", channel, Severity.WARNING, message, detail)
    if oldest is not None and moment - oldest > LATE_AFTER:
        message = f"{pending} message(s) en attente depuis plus d'une heure : le destinataire ne répond pas."
        return Finding("outbox", channel, Severity.WARNING, message, detail, oldest)
    return Finding("outbox", channel, Severity.OK, "Messages remis.", detail)
