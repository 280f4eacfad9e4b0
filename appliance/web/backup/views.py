"""The backup pages. Reading is VIEW_HEALTH (no patient data: targets, times, sizes, disk labels);
"back up now" is EDIT_SETTINGS (administrators) and recorded in the audit trail (110113 Security
Alert E, 110132 Use of Restricted Function, the backup as a security resource).

"Back up now" never runs borg in the console's process, which runs as the appliance user: under
`make run` (development mode) it queues a `backup` job the background worker runs, its progress
polled like the other jobs'; on a box it writes the request file `<data>/run/backup-now`, which
the path unit `appliance-backup-now.path` turns into `appliance-backup.service` (root, confined),
the same run as the night's.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from appliance import jobs
from appliance.accounts.roles import Permission
from appliance.audit.events import Action, EventId, EventType, ObjectKind, Outcome, ParticipantObject
from appliance.backup.history import DrillRecord, KeyExport, drills, key_exports, last_run, rotation, runs
from appliance.backup.targets import LOCAL, REMOTE, USB, Target, targets_of
from appliance.config import Config
from appliance.web.auth import requires
from appliance.web.auth.access import background, can, current_account
from appliance.web.backup.forms import BackUpNowForm
from appliance.web.forms import lazy
from appliance.web.jobs.views import state_of
from appliance.web.recording import record
from appliance.web.services import services

blueprint = Blueprint("backup", __name__, url_prefix="/backup", template_folder="templates")
REQUEST_FILE = "backup-now"  # in <data>/run: appliance-backup-now.path watches it
RECENT_RUNS = 20
TARGET_NAMES = {REMOTE: lazy("Off-site repository"), LOCAL: lazy("Local repository"), USB: lazy("USB disks")}


@blueprint.context_processor
def words() -> dict[str, object]:
    return {"target_names": TARGET_NAMES}


def request_file(config: Config) -> Path:
    return config.storage.run_directory / REQUEST_FILE


@blueprint.route("")
@requires(Permission.VIEW_HEALTH)
def index() -> ResponseReturnValue:
    config = services().config
    records = runs(config.backup.state_directory)
    targets = targets_of(config.backup)
    return render_template(
        "backup/index.html",
        targets=[(target, last_run(records, target.name), last_run(records, target.name, True)) for target in targets],
        recent=list(reversed(records[-RECENT_RUNS:])),
        rotation=rotation(records, config.backup.usb.labels) if any(t.name == USB for t in targets) else None,
        drill=last_drill(config),
        job=running_backup(),
        requested=request_file(config).exists() and not config.is_development,
        development=config.is_development,
        form=BackUpNowForm() if can(Permission.EDIT_SETTINGS) and targets else None,
    )


def last_drill(config: Config) -> DrillRecord | None:
    found = drills(config.backup.state_directory)
    return found[-1] if found else None


def running_backup() -> jobs.Job | None:
    """The backup job waiting or running (development), if any."""
    for job in jobs.recent(services().engine, limit=20):
        if job.kind == jobs.BACKUP and not job.finished:
            return job
    return None


@blueprint.route("/now", methods=["POST"])
@requires(Permission.EDIT_SETTINGS)
def now() -> ResponseReturnValue:
    """Ask for a backup now: a job under `make run`, the request file on a box."""
    if not BackUpNowForm().validate_on_submit():
        abort(400)
    config = services().config
    if not targets_of(config.backup):
        flash(gettext("No backup is configured: set it up in the settings first."), "error")
        return redirect(url_for("backup.index"))
    username = started_by()
    if config.is_development:
        try:
            job_id = jobs.submit(services().engine, jobs.BACKUP, {}, username)
        except jobs.AlreadyQueued as queued:
            flash(gettext("A backup is already waiting or running."), "warning")
            record_request(("job", str(queued.job_id)), Outcome.MINOR_FAILURE, "already queued")
            return redirect(url_for("backup.index"))
        record_request(("job", str(job_id)), Outcome.SUCCESS, "")
    else:
        write_request(request_file(config), username)
        record_request(("request", REQUEST_FILE), Outcome.SUCCESS, "")
    flash(gettext("Backup asked for: it starts within a few seconds."), "success")
    return redirect(url_for("backup.index"))


def write_request(path: Path, username: str) -> None:
    """The request the path unit watches (who asked and when, for the contractor reading it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps({"asked_by": username, "at": datetime.now(UTC).isoformat()}) + "\n")
    os.replace(partial, path)


def record_request(detail: tuple[str, str], outcome: Outcome, description: str) -> None:
    backup = ParticipantObject(ObjectKind.SECURITY_RESOURCE, "backup", "backup now", details=(detail,))
    record(EventId.SECURITY_ALERT, Action.EXECUTE, objects=(backup,), outcome=outcome,
           event_type=EventType.USE_OF_RESTRICTED_FUNCTION, description=description)  # fmt: skip


def started_by() -> str:
    account = current_account()
    return account.username if account else ""


@blueprint.route("/progress/<int:job_id>")
@requires(Permission.VIEW_HEALTH)
@background
def progress(job_id: int) -> ResponseReturnValue:
    """A backup job's progress as JSON, for the progress bar (does not keep a session alive)."""
    try:
        job = jobs.get(services().engine, job_id)
    except jobs.NoSuchJob:
        abort(404)
    if job.kind != jobs.BACKUP:
        abort(404)
    return jsonify(state_of(job))


@blueprint.route("/key")
@requires(Permission.VIEW_HEALTH)
def key() -> ResponseReturnValue:
    """The escrow page: how to export each target's key at commissioning, and whether it was."""
    config = services().config
    exports = key_exports(config.backup.state_directory)
    return render_template(
        "backup/key.html",
        targets=[(target, exported(exports, target)) for target in targets_of(config.backup)],
        exports=exports,
        labels=config.backup.usb.labels,
    )


def exported(exports: list[KeyExport], target: Target) -> KeyExport | None:
    found = [export for export in exports if export.target == target.name]
    return found[-1] if found else None
