"""The jobs pages. The worker does the work and writes its progress to the job's row; these pages
only queue a job, show its row (polled every 2 s by console.js as JSON) and ask for a cancellation.
The runner records each job's start and end in the audit trail, with the account that asked."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from appliance import jobs
from appliance.accounts.roles import Permission
from appliance.archive import integrity, lossless, tiers
from appliance.audit.events import Action, EventId, EventType, Outcome, patient
from appliance.jobs import kinds
from appliance.jobs.runner import job_object
from appliance.web.auth import current_account, requires
from appliance.web.auth.access import background, can
from appliance.web.forms import lazy
from appliance.web.recording import record
from appliance.web.services import services

blueprint = Blueprint("jobs", __name__, url_prefix="/jobs", template_folder="templates")

KIND_NAMES = {
    jobs.VERIFY: lazy("Verify the archive"),
    jobs.COMPRESS: lazy("Compress without loss"),
    jobs.REINDEX: lazy("Check the index"),
    jobs.VERIFY_AUDIT: lazy("Verify the audit trail"),
    jobs.TIER_MOVE: lazy("Move old studies to deferred storage"),
    jobs.TIER_RECALL: lazy("Bring a study back to immediate storage"),
    jobs.BACKUP: lazy("Back up now"),
}
KIND_DESCRIPTIONS = {
    jobs.VERIFY: lazy("Reads every image and compares it with its fingerprint: finds missing or altered files."),
    jobs.COMPRESS: lazy(
        "Compresses the images still stored uncompressed, checking each one decodes to the same pixels."
    ),
    jobs.REINDEX: lazy("Finds files the index does not know (left by a power cut) and indexes them."),
    jobs.VERIFY_AUDIT: lazy(
        "Recomputes the audit trail's chain of fingerprints: finds records edited, removed or inserted."
    ),
    jobs.TIER_MOVE: lazy("Moves the studies past their immediate-access period, checking every copy before removal."),
}
RESULT_NAMES = {
    "verified": lazy("images verified"),
    "damaged": lazy("damaged images"),
    "missing": lazy("missing files"),
    "altered": lazy("altered files"),
    "orphans": lazy("files unknown to the index"),
    "intact": lazy("archive intact"),
    "missing_files": lazy("Missing files"),
    "altered_files": lazy("Altered files"),
    "orphan_files": lazy("Files unknown to the index"),
    "compressed": lazy("images compressed"),
    "skipped": lazy("images left as they are"),
    "failed_verification": lazy("compressions refused by the check"),
    "saved_bytes": lazy("space saved"),
    "transfer_syntax": lazy("compression"),
    "reindexed": lazy("files indexed"),
    "set_aside": lazy("copies set aside"),
    "indexed_meanwhile": lazy("files indexed meanwhile by a reception"),
    "reindexed_files": lazy("Files indexed"),
    "set_aside_files": lazy("Copies set aside"),
    "checked": lazy("records checked"),
    "first_seq": lazy("first record"),
    "last_seq": lazy("last record"),
    "last_hash": lazy("last hash"),
    "broken": lazy("records breaking the chain"),
    "chain_intact": lazy("audit trail intact"),
    "studies_moved": lazy("studies moved"),
    "instances_moved": lazy("images moved"),
    "moved_bytes": lazy("size moved"),
    "lossy_copies": lazy("images made lossy (tiers.lossy)"),
    "studies_failed": lazy("studies left in place"),
    "failures": lazy("Studies left in place"),
    "tier": lazy("deferred storage"),
    "study_instance_uid": lazy("study"),
    "instances_back": lazy("images brought back"),
    "back_bytes": lazy("size brought back"),
    "succeeded": lazy("succeeded"),
    "targets": lazy("targets"),
    "archive": lazy("archive"),
    "files": lazy("files"),
    "original_bytes": lazy("bytes read"),
    "deduplicated_bytes": lazy("bytes added"),
    "reason": lazy("reason"),
    "detail": lazy("detail"),
}
STEP_NAMES = {
    integrity.CHECKING_FILES: lazy("checking the files"),
    integrity.LOOKING_FOR_ORPHANS: lazy("looking for files unknown to the index"),
    integrity.ADOPTING_ORPHANS: lazy("indexing the files unknown to the index"),
    integrity.INDEXING_DAYS: lazy("indexing the files, one day folder at a time"),
    lossless.COMPRESSING: lazy("compressing the images"),
    kinds.WAITING_FOR_LOCK: lazy("waiting: another compression is running"),
    tiers.MOVING: lazy("moving studies to deferred storage"),
    tiers.BRINGING_BACK: lazy("bringing the study back to immediate storage"),
    kinds.PREPARING_REPOSITORY: lazy("preparing the local backup repository"),
    kinds.BACKING_UP: lazy("backing up"),
}
CANCELLED_BY = "cancelled by "
DAMAGED_LISTS = ("missing_files", "altered_files")  # the verify job's lists naming patients
STATE_NAMES = {
    jobs.WAITING: lazy("waiting for the worker"),
    jobs.RUNNING: lazy("in progress"),
    jobs.SUCCEEDED: lazy("finished"),
    jobs.FAILED: lazy("stopped by an error"),
    jobs.CANCELLED: lazy("cancelled on request"),
}


@blueprint.route("")
@requires(Permission.RUN_JOBS)
def index() -> ResponseReturnValue:
    return render_template(
        "jobs/index.html",
        jobs=jobs.recent(services().engine, limit=30),
        kinds=jobs.MAINTENANCE,
        kind_names=KIND_NAMES,
        kind_descriptions=KIND_DESCRIPTIONS,
        state_names=STATE_NAMES,
    )


@blueprint.route("/start", methods=["POST"])
@requires(Permission.RUN_JOBS)
def start() -> ResponseReturnValue:
    kind = request.form.get("kind", "")
    if kind not in jobs.MAINTENANCE:  # a recall is asked for on the tiers page, the backup on its own page
        abort(400, description="unknown job kind")
    try:
        job_id = jobs.submit(services().engine, kind, {}, started_by())
    except jobs.AlreadyQueued as queued:
        flash(gettext("This job is already waiting or running."), "warning")
        return redirect(url_for("jobs.show", job_id=queued.job_id))
    return redirect(url_for("jobs.show", job_id=job_id))


@blueprint.route("/<int:job_id>")
@requires(Permission.RUN_JOBS)
def show(job_id: int) -> ResponseReturnValue:
    job = find(job_id)
    if request.accept_mimetypes.best == "application/json":
        return jsonify(state_of(job))
    return render_template(
        "jobs/show.html",
        job=job,
        kind_names=KIND_NAMES,
        state_names=STATE_NAMES,
        result_names=RESULT_NAMES,
        step=step_words(job.step),
        error=error_words(job),
        files_shown=show_damaged_files(job),
    )


def show_damaged_files(job: jobs.Job) -> bool:
    """Whether the page lists the damaged files with their patients' IDs: only to a role that may
    see patient data, and then recorded in the audit trail (110103 R, one patient object each)."""
    if not can(Permission.SEARCH_PATIENTS):
        return False
    listed = [item for key in DAMAGED_LISTS for item in job.result.get(key, []) if isinstance(item, dict)]
    patient_ids = sorted({str(item.get("patient_id", "")) for item in listed} - {""})
    if patient_ids:
        record(EventId.INSTANCES_ACCESSED, Action.READ, objects=tuple(patient(value) for value in patient_ids))
    return True


@blueprint.route("/<int:job_id>/state")
@requires(Permission.RUN_JOBS)
@background
def state(job_id: int) -> ResponseReturnValue:
    """The job's progress as JSON, for the progress bar (does not keep an idle session alive)."""
    return jsonify(state_of(find(job_id)))


@blueprint.route("/<int:job_id>/cancel", methods=["POST"])
@requires(Permission.RUN_JOBS)
def cancel(job_id: int) -> ResponseReturnValue:
    try:
        before = jobs.get(services().engine, job_id)
        job = jobs.request_cancel(services().engine, job_id, started_by())
    except jobs.NoSuchJob:
        abort(404)
    if not job.finished:
        flash(gettext("Cancellation asked: the job stops at its next checkpoint."), "info")
    elif before.state == jobs.WAITING:  # it never started: the worker will not record its end
        record(
            EventId.SECURITY_ALERT,
            Action.EXECUTE,
            objects=(job_object(job),),
            outcome=Outcome.MINOR_FAILURE,
            event_type=EventType.USE_OF_RESTRICTED_FUNCTION,
            description="cancelled before it started",
        )
    return redirect(url_for("jobs.show", job_id=job_id))


def find(job_id: int) -> jobs.Job:
    try:
        return jobs.get(services().engine, job_id)
    except jobs.NoSuchJob:
        abort(404, description="no such job")


def started_by() -> str:
    account = current_account()
    return account.username if account else ""


def state_of(job: jobs.Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "state": job.state,
        "state_label": str(STATE_NAMES.get(job.state, job.state)),
        "percent": job.percent,
        "done": job.done,
        "total": job.total,
        "step": step_words(job.step),
        "finished": job.finished,
    }


def step_words(step: str) -> str:
    """What a job is doing, in the console's language (the worker writes it in English)."""
    return str(STEP_NAMES.get(step, step))


def error_words(job: jobs.Job) -> str:
    """Why a job stopped, in the console's language where the words are known."""
    if job.error.startswith(CANCELLED_BY):
        return gettext("Cancelled by %(who)s.", who=job.error.removeprefix(CANCELLED_BY))
    return job.error
