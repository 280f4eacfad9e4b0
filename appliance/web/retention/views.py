"""The retention pages (`/retention`, R2): the studies past their retention date (nothing is ever
deleted by itself), the studies on legal hold, and for one study the purge an administrator
confirms with a reason, and the hold (freeze, unfreeze). Every page calls `archive.retention`.

Audit: the list records one 110112 Query (the date and policy as the query); the confirmation page
one 110103 Instances Accessed R (patient, study); a purge exactly one 110105 DICOM Study Deleted D
(patient, study; the reason as description), written between the study's mark and the removal of
its files so that a crash never loses it; a hold set or lifted one 110110 Patient Record U.
"""

from __future__ import annotations

import json

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from appliance.accounts.roles import Permission
from appliance.archive import retention, tiers
from appliance.archive.deferred import DeferredError, DeferredStore, deferred_store
from appliance.archive.retention import Policy, RetainedStudy
from appliance.audit.deletions import deleted_objects
from appliance.audit.events import Action, EventId, ObjectKind, ParticipantObject
from appliance.practice_time import today
from appliance.web.auth import current_account, requires
from appliance.web.forms import add_error, text
from appliance.web.recording import record
from appliance.web.retention.forms import FreezeForm, PurgeForm
from appliance.web.services import services

blueprint = Blueprint("retention", __name__, url_prefix="/retention", template_folder="templates")
RETENTION_QUERY = "retention: studies past their date"


def policy() -> Policy:
    return Policy.of(services().config.retention)


def username() -> str:
    account = current_account()
    return account.username if account is not None else ""


@blueprint.route("")
@requires(Permission.PURGE_STUDIES)
def index() -> ResponseReturnValue:
    engine, day = services().engine, today()
    retention.complete_interrupted(engine, tiers.file_store(services().config), store(), policy(), announce)
    expired = retention.expired_studies(engine, policy(), day)
    frozen = retention.frozen_studies(engine, policy())
    query = json.dumps({"on": f"{day:%Y%m%d}", "years": policy().years, "until_age": policy().until_age})
    record(
        EventId.QUERY,
        Action.EXECUTE,
        objects=(ParticipantObject(ObjectKind.QUERY, RETENTION_QUERY, query=query.encode()),),
    )
    return render_template(
        "retention/index.html",
        expired=expired,
        frozen=frozen,
        day=day,
        policy=policy(),
        config=services().config.retention,
    )


def found_or_404(study_instance_uid: str) -> RetainedStudy:
    found = retention.retained_study(services().engine, policy(), study_instance_uid)
    if found is None:
        abort(404)
    return found


@blueprint.route("/<study_instance_uid>/purge", methods=["GET", "POST"])
@requires(Permission.PURGE_STUDIES)
def purge(study_instance_uid: str) -> ResponseReturnValue:
    """The confirmation page (GET), the purge (POST): a reason and the box ticked."""
    found = found_or_404(study_instance_uid)
    form = PurgeForm()
    if form.validate_on_submit():
        try:
            retention.purge(
                services().engine, tiers.file_store(services().config), store(), policy(),
                study_instance_uid, username(), text(form.reason), today(), announce,
            )  # fmt: skip
        except retention.Frozen:
            add_error(form.reason, gettext("This study is on legal hold: lift the hold first."))
        except retention.NotExpired:
            add_error(form.reason, gettext("This study has not reached its retention date."))
        except (retention.RetentionError, OSError):
            add_error(form.reason, gettext("The deletion could not be completed; it will be finished later."))
        else:
            flash(gettext("The study was deleted. It can be restored from the backups."), "success")
            return redirect(url_for("retention.index"))
    else:
        record(EventId.INSTANCES_ACCESSED, Action.READ, objects=deleted_objects(found))
    return render_template("retention/purge.html", study=found, form=form, freeze_form=FreezeForm(), day=today())


def announce(found: RetainedStudy, by: str, reason: str) -> None:
    """The purge's 110105 event, recorded before any file goes."""
    record(EventId.STUDY_DELETED, Action.DELETE, objects=deleted_objects(found), description=reason)


def store() -> DeferredStore | None:
    try:
        return deferred_store(services().config.tiers, services().config.storage.data_directory)
    except DeferredError:
        return None


@blueprint.route("/<study_instance_uid>/freeze", methods=["POST"])
@requires(Permission.PURGE_STUDIES)
def freeze(study_instance_uid: str) -> ResponseReturnValue:
    found = found_or_404(study_instance_uid)
    form = FreezeForm()
    if not form.validate_on_submit():
        return render_template(
            "retention/purge.html", study=found, form=PurgeForm(formdata=None), freeze_form=form, day=today()
        ), 400
    retention.freeze(services().engine, study_instance_uid, username(), text(form.reason))
    record(EventId.PATIENT_RECORD, Action.UPDATE, objects=deleted_objects(found), description=text(form.reason))
    flash(gettext("The study is on legal hold: it will not be listed for deletion."), "success")
    return redirect(url_for("retention.index"))


@blueprint.route("/<study_instance_uid>/unfreeze", methods=["POST"])
@requires(Permission.PURGE_STUDIES)
def unfreeze(study_instance_uid: str) -> ResponseReturnValue:
    found = found_or_404(study_instance_uid)
    try:
        retention.unfreeze(services().engine, study_instance_uid)
    except retention.NoSuchStudy:
        abort(404)
    record(EventId.PATIENT_RECORD, Action.UPDATE, objects=deleted_objects(found), description="legal hold lifted")
    flash(gettext("The legal hold is lifted."), "success")
    return redirect(url_for("retention.index"))
