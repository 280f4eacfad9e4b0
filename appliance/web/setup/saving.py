"""What every setup step does with a valid form: the change goes to the console's settings layer
(`appliance.config.writer`, validated as `appliance config check` would), the console and the
daemons put it in force (SIGHUP through their PID files), the page says which reloaded and which
keys wait for a restart, and the change is audited (110113 Security Alert, the changed keys named,
never their values). A refusal puts each problem next to the field its key belongs to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import flash
from flask_babel import gettext
from flask_wtf import FlaskForm

from appliance import systemd
from appliance.audit.events import Action, EventId, EventType, ObjectKind, ParticipantObject
from appliance.config import ConfigError
from appliance.config.checks import Key, Problem
from appliance.config.loader import key_path
from appliance.config.writer import WriteResult, write_console_settings
from appliance.systemd import ReloadAnswer, ReloadState
from appliance.web.forms import add_error
from appliance.web.recording import record
from appliance.web.services import services

FieldOf = Callable[[Key], str | None]
SETTINGS_NAME = "Console settings"  # ParticipantObjectName of the settings in the audit trail


def save(changes: dict[str, Any], event_type: EventType = EventType.SOFTWARE_CONFIGURATION) -> WriteResult:
    """Write `changes`; when written and something changed, reload, say so and audit."""
    config = services().config
    result = write_console_settings(config, changes)
    if not result.written:
        return result
    if not result.changed:
        flash(gettext("Nothing changed."), "info")
        return result
    waiting = reload_console()
    answers = systemd.reload_daemons(config.storage.run_directory)
    record_change(result.changed, event_type)
    flash(gettext("Saved."), "success")
    for category, message in reload_messages(answers, waiting):
        flash(message, category)
    return result


def reload_console() -> list[str]:
    """Put the new settings in force in this process; the keys only a restart applies."""
    try:
        return services().settings.reload()
    except ConfigError as error:  # the main file changed meanwhile and is invalid: the old one stays
        flash(gettext("The console could not read the configuration again: %(problems)s", problems=error), "error")
        return []


def reload_messages(answers: list[ReloadAnswer], waiting: list[str]) -> list[tuple[str, str]]:
    """(category, text) telling which daemons reloaded, which did not, and what needs a restart."""
    by_state: dict[ReloadState, list[str]] = {}
    for answer in answers:
        by_state.setdefault(answer.state, []).append(answer.name)
    messages = []
    if by_state.get(ReloadState.RELOADED):
        names = ", ".join(by_state[ReloadState.RELOADED])
        messages.append(("info", gettext("In force now in: %(daemons)s.", daemons=names)))
    silent = by_state.get(ReloadState.NO_ANSWER, []) + by_state.get(ReloadState.REFUSED, [])
    if silent:
        text = gettext("Did not confirm the reload (see its log): %(daemons)s.", daemons=", ".join(silent))
        messages.append(("warning", text))
    if not by_state.get(ReloadState.RELOADED) and not silent:
        messages.append(("info", gettext("No service is running: the settings apply when they start.")))
    if waiting:
        text = gettext("Applied only at the next restart of the box: %(keys)s.", keys=", ".join(waiting))
        messages.append(("warning", text))
    return messages


def record_change(changed: tuple[str, ...], event_type: EventType) -> None:
    """110113 Security Alert, E: the console settings, with the keys changed (never their values)."""
    settings = ParticipantObject(
        ObjectKind.SECURITY_RESOURCE,
        str(services().config.console_settings_file),
        SETTINGS_NAME,
        details=tuple(("changed", key) for key in changed),
    )
    record(EventId.SECURITY_ALERT, Action.EXECUTE, objects=(settings,), event_type=event_type)


def show_problems(form: FlaskForm, problems: tuple[Problem, ...], field_of: FieldOf) -> list[str]:
    """Each problem next to its field; those of no field of this form as `key: message` lines."""
    elsewhere = []
    for problem in problems:
        name = field_of(problem.key)
        field = getattr(form, name, None) if name else None
        if field is not None:
            add_error(field, problem.message)
        else:
            elsewhere.append(f"{key_path(problem.key)}: {problem.message}")
    return elsewhere


def by_path(fields: dict[str, str]) -> FieldOf:
    """A `FieldOf` from {key path: field name}, e.g. {"hl7.ris.host": "ris_host"}; an entry of a list
    (`hl7.accepted_sending_facilities[1]`) belongs to the list's field."""

    def field_of(key: Key) -> str | None:
        while key:
            found = fields.get(key_path(key))
            if found:
                return found
            key = key[:-1]
        return None

    return field_of
