"""Findings about the outbox: parked messages (refused by their receiver: someone must look), and
messages waiting longer than they should (the receiver has been unreachable for a while)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from appliance.monitor.findings import Finding, Severity
from appliance.outbox import channel_states

LATE_AFTER = timedelta(hours=1)


def check(engine: Engine, now: datetime | None = None) -> list[Finding]:
    """One finding per channel with parked messages, and one per channel waiting for over an hour."""
    moment = now or datetime.now(UTC)
    findings = []
    for state in channel_states(engine):
        if state.parked:
            message = f"{state.parked} message(s) refused by the receiver and set aside (appliance outbox list)"
            findings.append(Finding("outbox", state.channel, Severity.WARNING, message))
        if state.oldest_pending is not None and moment - state.oldest_pending > LATE_AFTER:
            message = f"{state.pending} message(s) waiting; the receiver has not taken them for over an hour"
            findings.append(Finding("outbox", state.channel, Severity.WARNING, message, state.oldest_pending))
    return findings
