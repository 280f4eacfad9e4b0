"""Weasis from the console: the two launch addresses and the one-time manifest (see weasis.py).

- `GET /viewer/weasis/<uid>?path=manifest|dicomweb&scope=study|patient` (SEARCH_PATIENTS): redirects
  the browser to a `weasis://` address. The manifest path carries a one-time manifest address; the
  DICOMweb path a bearer token for `$dicom:rs`. `scope=patient` opens every study of the patient.
  The DICOMweb path records one 110103 (R) with the patient and the studies handed over.
- `GET /viewer/weasis/manifest/<token>` (public: the one-time token is the credential): the manifest,
  once; 404 on the second use or after ONE_TIME_MINUTES. Records one 110103 (R) in the name of the
  person whose click made the token.

Addresses given to Weasis are absolute, built on the address the browser used to reach the console
(nginx passes the host and scheme on), so that Weasis on the same workstation reaches the same box.
"""

from __future__ import annotations

from flask import Response, abort, current_app, redirect, request, url_for
from flask.typing import ResponseReturnValue

from appliance.accounts.roles import Permission
from appliance.archive.stacks import StudyStacks, patient_studies, study_stacks
from appliance.audit.events import Action, EventId, patient, patient_number, study
from appliance.web import tokens
from appliance.web.auth import public, requires
from appliance.web.auth.access import current_account
from appliance.web.recording import record
from appliance.web.services import services
from appliance.web.viewer import weasis
from appliance.web.viewer.views import blueprint, found_study


@blueprint.route("/viewer/weasis/<study_instance_uid>")
@requires(Permission.SEARCH_PATIENTS)
def launch(study_instance_uid: str) -> ResponseReturnValue:
    """Send the browser to Weasis on this study (or its patient), by the path asked for."""
    found_study(study_instance_uid)
    studies = scope_studies(study_instance_uid, request.args.get("scope", "study"))
    account = current_account()
    username, full_name = (account.username, account.full_name) if account else ("", "")
    if request.args.get("path", "manifest") == "dicomweb":
        bearer = tokens.issue(secret(), tokens.BEARER, username, full_name, studies)
        record_handover([stacks for uid in studies if (stacks := study_stacks(services().engine, uid))], None)
        return redirect(weasis.launch_dicomweb(f"{public_base()}/dicomweb", studies, bearer))
    one_time = tokens.issue(secret(), tokens.MANIFEST, username, full_name, studies)
    address = public_base() + url_for("viewer.manifest", token=one_time)
    return redirect(weasis.launch_manifest(address))


@blueprint.route("/viewer/weasis/manifest/<token>")
@public
def manifest(token: str) -> ResponseReturnValue:
    """The Weasis manifest of the token's studies, once."""
    grant = tokens.use_once(secret(), services().config.storage.data_directory, token)
    if grant is None:
        abort(404)
    studies = [stacks for uid in grant.study_instance_uids if (stacks := study_stacks(services().engine, uid))]
    bearer = tokens.issue(secret(), tokens.BEARER, grant.username, grant.full_name, grant.study_instance_uids)
    body = weasis.manifest(studies, f"{public_base()}/wado", bearer, grant.nonce)
    record_handover(studies, grant.username)
    return Response(body, mimetype="application/xml")


def scope_studies(study_instance_uid: str, scope: str) -> list[str]:
    """The study alone, or every study of its patient (the asked one first)."""
    if scope != "patient":
        return [study_instance_uid]
    others = [uid for uid in patient_studies(services().engine, study_instance_uid) if uid != study_instance_uid]
    return [study_instance_uid, *others]


def record_handover(studies: list[StudyStacks], username: str | None) -> None:
    """110103 DICOM Instances Accessed (R): the patient and the studies given to Weasis."""
    if not studies:
        return
    first = studies[0]
    objects = [patient(patient_number(first.patient_id, first.issuer_of_patient_id), first.patient_name)]
    objects.extend(study(entry.study_instance_uid, entry.accession_number) for entry in studies)
    record(EventId.INSTANCES_ACCESSED, Action.READ, objects=tuple(objects), username=username)


def public_base() -> str:
    """The console's address as the browser reached it (scheme and host, no trailing slash)."""
    return request.url_root.rstrip("/")


def secret() -> bytes:
    key = current_app.secret_key
    return key if isinstance(key, bytes) else str(key).encode()
