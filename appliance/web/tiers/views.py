"""The storage tiers page (`/tiers`, R1): how many studies, images and bytes each tier holds, the
configured deferred tier, and two actions queued as jobs for the worker (`appliance.jobs`): move
now (every study past its immediate-access period) and bring one study back to the main storage.

No patient data is shown (counts and a Study Instance UID typed in): nothing is recorded for the
view; the worker records each job's start and end (110113 / 110132) with the account that asked.
"""

from __future__ import annotations

import re

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from appliance import jobs
from appliance.accounts.roles import Permission
from appliance.archive import tiers
from appliance.web.auth import current_account, requires
from appliance.web.services import services

blueprint = Blueprint("tiers", __name__, url_prefix="/tiers", template_folder="templates")
UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")  # PS3.5 9.1


def started_by() -> str:
    account = current_account()
    return account.username if account is not None else ""


@blueprint.route("")
@requires(Permission.RUN_JOBS)
def index(error: str = "", status: int = 200) -> ResponseReturnValue:
    config = services().config.tiers
    return render_template(
        "tiers/index.html",
        usage=tiers.usage(services().engine),
        config=config,
        latest_move=jobs.latest(services().engine, jobs.TIER_MOVE),
        latest_recall=jobs.latest(services().engine, jobs.TIER_RECALL),
        error=error,
    ), status


@blueprint.route("/move", methods=["POST"])
@requires(Permission.RUN_JOBS)
def move() -> ResponseReturnValue:
    if services().config.tiers.deferred == "none":
        return index(gettext("No deferred storage is configured."), 400)
    return queued(jobs.TIER_MOVE, {})


@blueprint.route("/bring-back", methods=["POST"])
@requires(Permission.RUN_JOBS)
def bring_back() -> ResponseReturnValue:
    study_instance_uid = request.form.get("study_instance_uid", "").strip()
    if not UID.match(study_instance_uid):
        return index(gettext("Type a Study Instance UID (digits and dots)."), 400)
    if not tiers.deferred_instances(services().engine, study_instance_uid):
        return index(gettext("This study has no image in deferred storage."), 400)
    return queued(jobs.TIER_RECALL, {"study_instance_uid": study_instance_uid})


def queued(kind: str, arguments: dict[str, str]) -> ResponseReturnValue:
    try:
        job_id = jobs.submit(services().engine, kind, arguments, started_by())
    except jobs.AlreadyQueued as already:
        flash(gettext("This job is already waiting or running."), "warning")
        job_id = already.job_id
    return redirect(url_for("jobs.show", job_id=job_id))
