"""The box's own side of audit events: the processes starting and stopping (110100 Application
Activity), the local user behind a command line, where the records come from (AuditSource), and the
trail a process opens (`open_trail`, with the benchmark's off switch).
"""

from __future__ import annotations

import getpass
import logging
import os
import socket

from appliance.audit.events import (
    Action,
    AuditEvent,
    EventId,
    EventType,
    Outcome,
    Participant,
    ParticipantKind,
    ParticipantRole,
    application,
    person,
)
from appliance.audit.message import AuditSource
from appliance.audit.trail import AuditTrail, DiscardingRecorder
from appliance.config import Config

LOGGER = logging.getLogger(__name__)

# Only for `tests/bench/bench_audit.py`, which measures what auditing costs: with this set to 1 a
# process records nothing. Never set on a box (the daemons log a warning when it is).
AUDIT_OFF_ENVIRONMENT = "APPLIANCE_AUDIT_OFF_FOR_BENCHMARK"


def host_name() -> str:
    return socket.gethostname()


def local_user() -> Participant:
    """The operating-system user running a command on the box (the requestor of a CLI export)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = str(os.getuid())
    return person(name, host_name())


def this_application(name: str) -> Participant:
    """This box's process `name` (appliance-dicom, appliance-cli, ...), at the box's host name."""
    return application(name, host_name())


def application_activity(name: str, event_type: EventType) -> AuditEvent:
    """110100 Application Activity (E): `name` started or stopped, launched by the local user (systemd's)."""
    launcher = local_user()
    launcher = Participant(launcher.user_id, True, ParticipantKind.PERSON, launcher.address,
                           role=ParticipantRole.APPLICATION_LAUNCHER)  # fmt: skip
    return AuditEvent(
        EventId.APPLICATION_ACTIVITY, Action.EXECUTE, Outcome.SUCCESS, (this_application(name), launcher),
        event_type=event_type,
    )  # fmt: skip


def audit_source(config: Config) -> AuditSource:
    """AuditSourceIdentification: the box's name on the network, and the practice."""
    return AuditSource(config.web.host_name or host_name(), config.site_name)


def open_trail(config: Config, application_name: str, announce: bool = True) -> AuditTrail | DiscardingRecorder:
    """The configured trail, written by a background thread, with `application_name`'s start
    recorded unless `announce` is false (a process of an application that records its own start);
    a discarding recorder when the benchmark switch is set."""
    if os.environ.get(AUDIT_OFF_ENVIRONMENT) == "1":
        LOGGER.warning("auditing is off (%s=1): for measuring its cost only", AUDIT_OFF_ENVIRONMENT)
        return DiscardingRecorder()
    trail = AuditTrail(config.audit.database, background=True)
    if announce:
        trail.record(application_activity(application_name, EventType.APPLICATION_START))
    return trail


def close_trail(trail: AuditTrail | DiscardingRecorder, application_name: str) -> None:
    """Record `application_name`'s stop and close the trail."""
    trail.record(application_activity(application_name, EventType.APPLICATION_STOP))
    trail.close()
