"""The console's side of the audit trail: who is asking (the account and its address) and which
application answers, so that each page records what it showed or changed in one call."""

from __future__ import annotations

from flask import request

from appliance.audit.events import (
    Action,
    AuditEvent,
    EventId,
    EventType,
    Outcome,
    Participant,
    ParticipantObject,
    application,
    person,
)
from appliance.web.auth.access import current_account
from appliance.web.security import client_address
from appliance.web.services import APPLICATION_NAME, services


def requestor(username: str | None = None) -> Participant:
    """The person behind this request: the logged-in account, or the username typed at the login."""
    account = current_account()
    if account is not None and username is None:
        return person(account.username, client_address(), account.full_name)
    return person(username or "", client_address())


def console() -> Participant:
    return application(APPLICATION_NAME, request.host)


def record(
    event: EventId,
    action: Action,
    objects: tuple[ParticipantObject, ...] = (),
    outcome: Outcome = Outcome.SUCCESS,
    event_type: EventType | None = None,
    description: str = "",
    username: str | None = None,
) -> None:
    """Record one event of the current request in the audit trail."""
    services().record(
        AuditEvent(
            event=event,
            action=action,
            outcome=outcome,
            participants=(requestor(username), console()),
            objects=objects,
            event_type=event_type,
            outcome_description=description,
        )
    )
