"""The built-in viewer (`/viewer`): a study's page, its description for the viewer's script, the key
images a radiologist flags (K1), the viewer's built files, and the Weasis launch addresses.

Routes and their permission:
- `GET /viewer/studies/<uid>` (SEARCH_PATIENTS): the viewer page; records one 110103 DICOM Instances
  Accessed (R) with the patient and the study.
- `GET /viewer/studies/<uid>/study.json` (SEARCH_PATIENTS): series, instances, key-image documents
  and image addresses, fetched by the page's script as it opens (`@background`: the page's own audit
  event covers it).
- `POST /viewer/studies/<uid>/key-images` (KEY_IMAGES): makes a KOS through the archive's ingest;
  CSRF token in the `X-CSRFToken` header; records 110103 (C) with the patient and the new document.
- `GET /viewer/assets/<name>` (public: the built viewer, no patient data): hashed files, cached
  for a year; `.wasm` as application/wasm and `.js` as text/javascript (module workers need it).
- Weasis launch and manifest routes: see `launch.py`.

Images reach the viewer from the DICOMweb edge's standard addresses (`ADDRESSES`), on the same origin,
with the console's session cookie.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, jsonify, render_template, request, send_from_directory
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from appliance.accounts.roles import Permission
from appliance.archive.index import Index
from appliance.archive.ingest import Ingest
from appliance.archive.key_images import (
    KEY_OBJECT_SELECTION,
    Author,
    FlaggedImage,
    KeyImageError,
    KeyObject,
    create_key_object,
    key_objects,
)
from appliance.archive.stacks import Stack, StudyStacks, study_stacks
from appliance.archive.storage import FileStore
from appliance.archive.study_list import day_of
from appliance.audit.events import Action, EventId, patient, patient_number, study
from appliance.patients.names import french_name
from appliance.web.auth import public, requires
from appliance.web.auth.access import background, can, current_account
from appliance.web.recording import record
from appliance.web.security import viewer_policy
from appliance.web.services import services
from appliance.web.viewer.titles import PRESETS, title_choices, title_words

blueprint = Blueprint("viewer", __name__, template_folder="templates")

DIST = Path(__file__).parent / "dist"
ENTRY = "src/main.js"
UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")  # PS3.5 9.1
YEAR = 365 * 24 * 3600
MEDIA_TYPES = {".wasm": "application/wasm", ".js": "text/javascript", ".css": "text/css", ".json": "application/json"}
# Where the viewer's script takes images from: the DICOMweb edge (appliance/web/dicomweb), same origin.
ADDRESSES = {
    "instance": "/wado?requestType=WADO&studyUID={study}&seriesUID={series}&objectUID={instance}"
    "&contentType=application%2Fdicom&transferSyntax=*",
    "thumbnail": "/dicomweb/studies/{study}/series/{series}/thumbnail?viewport=128%2C128",
    "rendered": "/dicomweb/studies/{study}/series/{series}/instances/{instance}/rendered",
}
MAXIMUM_FLAGGED = 500


@blueprint.route("/viewer/studies/<study_instance_uid>")
@requires(Permission.SEARCH_PATIENTS)
@viewer_policy
def show(study_instance_uid: str) -> ResponseReturnValue:
    """The viewer on one study, with the server-rendered middle slice of its first image series."""
    stacks = found_study(study_instance_uid)
    record_view(stacks)
    first = next((stack for stack in stacks.stacks if stack.has_pixels), None)
    return render_template(
        "viewer/study.html",
        study=stacks,
        patient_name=french_name(stacks.patient_name),
        study_day=day_of(stacks.study_date),
        preview=preview_address(stacks, first),
        assets=entry_assets(),
        titles=title_choices(),
        presets=PRESETS,
        key_object=request.args.get("key-object", ""),
        may_flag=may_flag(),
    )


@blueprint.route("/viewer/studies/<study_instance_uid>/study.json")
@requires(Permission.SEARCH_PATIENTS)
@background  # fetched by the page's script as it opens, not by a person: the page's record covers it
def description(study_instance_uid: str) -> ResponseReturnValue:
    """What the viewer's script needs: series with their instances, key-image documents, addresses."""
    stacks = found_study(study_instance_uid)
    return jsonify(
        study_instance_uid=stacks.study_instance_uid,
        addresses=ADDRESSES,
        series=[series_entry(stack) for stack in stacks.stacks],
        key_images=[key_object_entry(entry) for entry in key_objects(services().engine, study_instance_uid)],
    )


@blueprint.route("/viewer/studies/<study_instance_uid>/key-images", methods=["POST"])
@requires(Permission.KEY_IMAGES)
def flag(study_instance_uid: str) -> ResponseReturnValue:
    """Make a KOS of the flagged images (JSON: title code, note, images); answers the study's KOS list,
    or 400 with the reason (nothing is stored)."""
    stacks = found_study(study_instance_uid)
    try:
        title, note, images = flag_request(request.get_json(silent=True))
        created = create_key_object(
            services().engine,
            archive_ingest(),
            study_instance_uid,
            images,
            title,
            note,
            author(),
            services().config.site_name,
            services().config.dicom.ae_title,
        )
    except KeyImageError as error:
        return jsonify(error=gettext("The key images were not saved: %(reason)s", reason=str(error))), 400
    record(
        EventId.INSTANCES_ACCESSED,
        Action.CREATE,
        objects=(
            patient(patient_number(created.patient_id, created.issuer_of_patient_id), created.patient_name),
            study(stacks.study_instance_uid, created.accession_number, ((KEY_OBJECT_SELECTION, 1),)),
        ),
        description=f"key object selection {created.key_object.sop_instance_uid}",
    )
    listed = key_objects(services().engine, study_instance_uid)
    return jsonify(created=created.key_object.sop_instance_uid, key_images=[key_object_entry(k) for k in listed]), 201


@blueprint.route("/viewer/assets/<path:name>")
@public
@viewer_policy
def asset(name: str) -> ResponseReturnValue:
    """A file of the built viewer: hashed names, so cached for a year and never revalidated."""
    suffix = Path(name).suffix
    response = send_from_directory(DIST, name, mimetype=MEDIA_TYPES.get(suffix), max_age=YEAR)
    response.headers["Cache-Control"] = f"public, max-age={YEAR}, immutable"
    return response


def found_study(study_instance_uid: str) -> StudyStacks:
    """The study, or a 404 for a malformed UID or a study the archive does not hold."""
    stacks = study_stacks(services().engine, study_instance_uid) if UID.match(study_instance_uid) else None
    if stacks is None:
        abort(404)
    return stacks


def record_view(stacks: StudyStacks) -> None:
    """110103 DICOM Instances Accessed, read: the patient and the study with its SOP classes."""
    classes: dict[str, int] = {}
    for stack in stacks.stacks:
        for image in stack.images:
            classes[image.sop_class_uid] = classes.get(image.sop_class_uid, 0) + 1
    record(
        EventId.INSTANCES_ACCESSED,
        Action.READ,
        objects=(
            patient(patient_number(stacks.patient_id, stacks.issuer_of_patient_id), stacks.patient_name),
            study(stacks.study_instance_uid, stacks.accession_number, tuple(sorted(classes.items()))),
        ),
    )


def preview_address(stacks: StudyStacks, first: Stack | None) -> str:
    """The server-rendered JPEG of the middle image of the first image series ('' when none)."""
    if first is None:
        return ""
    middle = [image for image in first.images if image.frames > 0][(len(first.images) - 1) // 2]
    return ADDRESSES["rendered"].format(
        study=stacks.study_instance_uid, series=first.series_instance_uid, instance=middle.sop_instance_uid
    )


def series_entry(stack: Stack) -> dict[str, Any]:
    return {
        "series_instance_uid": stack.series_instance_uid,
        "number": stack.number,
        "modality": stack.modality,
        "description": stack.description,
        "images": stack.has_pixels,
        "frames": stack.frames,
        "instances": [
            {
                "sop_instance_uid": image.sop_instance_uid,
                "sop_class_uid": image.sop_class_uid,
                "number": image.instance_number,
                "frames": image.frames,
            }
            for image in stack.images
            if image.frames > 0
        ],
    }


def key_object_entry(entry: KeyObject) -> dict[str, Any]:
    return {
        "sop_instance_uid": entry.sop_instance_uid,
        "title_code": entry.title_code,
        "title": title_words(entry.title_code, entry.title),
        "note": entry.note,
        "author": entry.observer,
        "created": entry.content_date.isoformat() if entry.content_date else "",
        "images": [asdict(image) for image in entry.images],
    }


def flag_request(body: object) -> tuple[str, str, list[FlaggedImage]]:
    """Title code, note and images of a flag request. Raises KeyImageError when malformed."""
    if not isinstance(body, dict) or not isinstance(body.get("images"), list):
        raise KeyImageError("the request is not a key-image request")
    if len(body["images"]) > MAXIMUM_FLAGGED:
        raise KeyImageError(f"more than {MAXIMUM_FLAGGED} images flagged")
    images = []
    for item in body["images"]:
        if not isinstance(item, dict) or not UID.match(str(item.get("sop_instance_uid", ""))):
            raise KeyImageError("an image is not named by its SOP Instance UID")
        frame = item.get("frame")
        images.append(
            FlaggedImage(
                str(item.get("series_instance_uid", "")),
                str(item["sop_instance_uid"]),
                int(frame) if isinstance(frame, int) and not isinstance(frame, bool) else None,
            )
        )
    return str(body.get("title") or "113000"), str(body.get("note") or ""), images


def archive_ingest() -> Ingest:
    """The archive's ingest, as the DICOM edge uses it (same files, same index, same change feed)."""
    storage = services().config.storage
    return Ingest(
        FileStore(storage.data_directory, storage.minimum_free_space_mb * 1024 * 1024), Index(services().engine)
    )


def author() -> Author:
    account = current_account()
    return Author(account.username, account.full_name) if account else Author("", "")


def may_flag() -> bool:
    return can(Permission.KEY_IMAGES)


@cache
def manifest_of(folder: Path) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((folder / ".vite" / "manifest.json").read_text(encoding="utf-8"))
    return found


def entry_assets() -> dict[str, Any]:
    """The built script and style sheets of the viewer's entry (hashed names), or an empty script
    name when the viewer is not built (`make viewer`): the page then says so."""
    try:
        entry = manifest_of(DIST)[ENTRY]
    except (OSError, KeyError, ValueError):
        return {"script": "", "styles": []}
    return {"script": entry["file"], "styles": list(entry.get("css", []))}
