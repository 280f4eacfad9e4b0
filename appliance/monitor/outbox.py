"""Findings about the outbox, one per channel: parked messages (refused by their receiver: someone
must look), and messages waiting longer than they should (the receiver has been unreachable for a
while). A forwarding queue (`forward:<AE>`) or a fetch queue (`retrieve:<AE>`) is stuck per
destination: its finding names the destination and where to look in the console."""

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


# Channels delivering to one DICOM destination: what their messages are, in the staff's words.
DESTINATION_CHANNELS = {"forward": "image(s) à transférer vers", "retrieve": "examen(s) à rapatrier depuis"}


def channel_finding(state: ChannelState, moment: datetime) -> Finding:
    channel, parked, pending, oldest = state.channel, state.parked, state.pending, state.oldest_pending
    name, _, destination = channel.partition(":")
    if name in DESTINATION_CHANNELS and destination:
        return destination_finding(state, moment, f"{DESTINATION_CHANNELS[name]} {destination}")
    detail = f"{pending} pending, {parked} parked (appliance outbox list)"
    if parked:
        message = f"{parked} message(s) refusé(s) par le destinataire et mis de côté : le prestataire doit regarder."
        return Finding("outbox", channel, Severity.WARNING, message, detail)
    if oldest is not None and moment - oldest > LATE_AFTER:
        message = f"{pending} message(s) en attente depuis plus d'une heure : le destinataire ne répond pas."
        return Finding("outbox", channel, Severity.WARNING, message, detail, oldest)
    return Finding("outbox", channel, Severity.OK, "Messages remis.", detail)


def destination_finding(state: ChannelState, moment: datetime, what: str) -> Finding:
    """A queue to one DICOM destination: stuck when something was set aside, or when its oldest
    message has waited over an hour (the destination does not answer)."""
    detail = f"{state.pending} pending, {state.parked} parked (console: Transferts)"
    if state.parked:
        message = f"{state.parked} {what} refusé(s) et mis de côté : voir la page Transferts, puis réessayer."
        return Finding("outbox", state.channel, Severity.WARNING, message, detail)
    if state.oldest_pending is not None and moment - state.oldest_pending > LATE_AFTER:
        message = f"File bloquée : {state.pending} {what} en attente depuis plus d'une heure (il ne répond pas)."
        return Finding("outbox", state.channel, Severity.WARNING, message, detail, state.oldest_pending)
    return Finding("outbox", state.channel, Severity.OK, "File à jour.", detail)
