"""The worklist page (`/worklist`): the scheduled procedure steps of a day (today by default), per
station, with their status (scheduled, in progress, done, discontinued, cancelled), and for one
station the worklist exactly as that modality receives it (`worklist.day_list.modality_preview`,
the worklist service's own answers: its profile, name format and character set).

Each page shown records one 110112 Query whose query is the day, modality, station and preview
asked for; nothing about patients goes to the general log.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from itertools import groupby

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from appliance import practice_time
from appliance.accounts.roles import Permission
from appliance.audit.events import Action, EventId, ObjectKind, ParticipantObject
from appliance.web.auth import requires
from appliance.web.recording import record
from appliance.web.services import services
from appliance.web.worklist.forms import WorklistForm
from appliance.worklist.day_list import DayStep, day_stations, day_steps, modality_preview

blueprint = Blueprint("worklist", __name__, template_folder="templates")

MODALITY_WORKLIST_FIND = "1.2.840.10008.5.1.4.31"  # PS3.4 K.6.1: the query's SOP class in the audit record
STATUS_STATE = {"SCHEDULED": "", "IN PROGRESS": "warning", "COMPLETED": "ok", "DISCONTINUED": "error", "CANCELLED": ""}


@blueprint.route("/worklist")
@requires(Permission.VIEW_WORKLIST)
def today() -> ResponseReturnValue:
    """The steps of the chosen day (today by default), per station; a modality's view when asked."""
    form = WorklistForm(formdata=request.args)
    chosen_day = form.day.data if isinstance(form.day.data, date) else practice_time.today()
    engine, config = services().engine, services().config
    form.offer_stations(day_stations(engine, chosen_day, config.worklist))
    shown = {
        "form": form,
        "day": chosen_day,
        "status_words": status_words,
        "status_state": STATUS_STATE,
        "other_days": {
            "previous": day_arguments(chosen_day - timedelta(days=1)),
            "next": day_arguments(chosen_day + timedelta(days=1)),
        },
    }
    if request.args and not form.validate():
        return render_template("worklist/today.html", groups=[], preview=None, **shown)
    modality, station, preview_as = (str(field.data or "") for field in (form.modality, form.station, form.preview))
    steps = day_steps(engine, chosen_day, modality, station)
    preview = modality_preview(engine, config.worklist, preview_as, chosen_day, modality) if preview_as else None
    record_listing(chosen_day, modality, station, preview_as)
    return render_template("worklist/today.html", groups=grouped(steps), preview=preview, **shown)


def day_arguments(day: date) -> dict[str, str]:
    """The page's arguments for another day, the other choices kept."""
    return {**{key: value for key, value in request.args.items() if key != "day"}, "day": f"{day:%Y-%m-%d}"}


def grouped(steps: list[DayStep]) -> list[tuple[str, list[DayStep]]]:
    """The steps per station AE title (steps without a station last), each by start time."""
    ordered = sorted(steps, key=lambda step: (step.station_ae_title == "", step.station_ae_title, step.start_time))
    return [(station, list(group)) for station, group in groupby(ordered, key=lambda step: step.station_ae_title)]


def record_listing(day: date, modality: str, station: str, preview_as: str) -> None:
    """110112 Query: the day, modality, station and preview asked for (no patient key)."""
    keys = {"date": f"{day:%Y%m%d}", "modality": modality, "station": station, "preview": preview_as}
    query = json.dumps({key: value for key, value in keys.items() if value}, sort_keys=True)
    record(
        EventId.QUERY,
        Action.EXECUTE,
        objects=(ParticipantObject(ObjectKind.QUERY, MODALITY_WORKLIST_FIND, query=query.encode()),),
    )


def status_words(status: str) -> str:
    """A scheduled procedure step's status in words."""
    words = {
        "SCHEDULED": gettext("scheduled"),
        "IN PROGRESS": gettext("in progress"),
        "COMPLETED": gettext("done"),
        "DISCONTINUED": gettext("discontinued"),
        "CANCELLED": gettext("cancelled"),
    }
    return words.get(status, status)
