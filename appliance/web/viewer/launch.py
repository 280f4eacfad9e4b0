"""Weasis from the console: the two launch addresses and the one-time manifest (see weasis.py).

- `GET /viewer/weasis/<uid>?path=manifest|dicomweb&scope=study|patient` (SEARCH_PATIENTS): redirects
  the browser to a `weasis://` address. The manifest path carries a one-time manifest address; the
  DICOMweb path a bearer token for `$dicom:rs`. `scope=patient` opens every study of the patient.
  Records one 110103 (R) with the patient and the studies handed over, in the name of the person.
- `GET /viewer/weasis/manifest/<token>/<uid>?scope=` (public: the one-time token of
  `appliance.accounts.tokens` is the credential): the manifest, once; 404 on the second use or
  after ONE_TIME_MINUTES. Records one 110103 (R) in the name of the person whose click made it.

The WADO requests of Weasis carry a DICOMweb token of the same account (BEARER_MINUTES), checked
by the DICOMweb edge like any tool's.

Addresses given to Weasis are absolute: `web.public_base_url`, else the address the browser used
to reach the console (nginx passes the host and scheme on).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Response, abort, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import Headers

from appliance.accounts import tokens
from appliance.accounts.roles import Permission, may
from appliance.accounts.users import Account
from appliance.archive.stacks import patient_studies, study_stacks
from appliance.audit.events import Action, EventId, patient, patient_number, study
from appliance.web.auth import public, requires
from appliance.web.auth.access import current_account
from appliance.web.recording import record
from appliance.web.services import services
from appliance.web.viewer import weasis
from appliance.web.viewer.views import UID, blueprint, found_study

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

BEARER_MINUTES = 60  # long enough for Weasis to download a large study, then useless
ONE_TIME_MINUTES = 5  # Weasis fetches the manifest within seconds of the click


@blueprint.route("/viewer/weasis/<study_instance_uid>")
@requires(Permission.SEARCH_PATIENTS)
def launch(study_instance_uid: str) -> ResponseReturnValue:
    """Send the browser to Weasis on this study (or its patient), by the path asked for."""
    found_study(study_instance_uid)
    account = current_account()
    if account is None:
        abort(403)
    scope = "patient" if request.args.get("scope") == "patient" else "study"
    if request.args.get("path", "manifest") == "dicomweb":
        studies = scope_studies(study_instance_uid, scope)
        bearer = tokens.create(services().engine, account.id, BEARER_MINUTES, tokens.DICOMWEB, "Weasis (dicom:rs)")
        record_handover(studies, None)
        return to_weasis(weasis.launch_dicomweb(f"{public_base()}/dicomweb", studies, bearer.token))
    record_handover(scope_studies(study_instance_uid, scope), None)
    one_time = tokens.create(services().engine, account.id, ONE_TIME_MINUTES, tokens.ONE_TIME, "Weasis manifest")
    address = public_base() + url_for(
        "viewer.manifest", token=one_time.token, study_instance_uid=study_instance_uid, scope=scope
    )
    return to_weasis(weasis.launch_manifest(address))


@blueprint.route("/viewer/weasis/manifest/<token>/<study_instance_uid>")
@public
def manifest(token: str, study_instance_uid: str) -> ResponseReturnValue:
    """The Weasis manifest of the study (or of its patient with `scope=patient`), once per token."""
    account = tokens.consume(services().engine, token)
    if account is None or not may(account.role, Permission.SEARCH_PATIENTS) or not UID.match(study_instance_uid):
        abort(404)
    uids = scope_studies(study_instance_uid, request.args.get("scope", "study"))
    studies = [stacks for uid in uids if (stacks := study_stacks(services().engine, uid))]
    if not studies:
        abort(404)
    body = weasis.manifest(studies, f"{public_base()}/wado", bearer_for(account), token[:16])
    record_handover([entry.study_instance_uid for entry in studies], account.username)
    return Response(body, mimetype="application/xml")


class WeasisRedirect(Response):
    """A redirect to a `weasis://` address sent as it is: it is already percent-encoded, and Werkzeug
    would otherwise read the encoded command as a host name and fail to IDNA-encode it."""

    def get_wsgi_headers(self, environ: WSGIEnvironment) -> Headers:
        location = self.headers.pop("Location", None)
        try:
            headers = super().get_wsgi_headers(environ)
        finally:
            if location is not None:
                self.headers["Location"] = location
        if location is not None:
            headers["Location"] = location
        return headers


def to_weasis(location: str) -> Response:
    response = WeasisRedirect(status=302)
    response.headers["Location"] = location
    return response


def bearer_for(account: Account) -> str:
    """A DICOMweb token for Weasis's WADO requests (sent as the manifest's httpTag)."""
    return tokens.create(services().engine, account.id, BEARER_MINUTES, tokens.DICOMWEB, "Weasis manifest").token


def scope_studies(study_instance_uid: str, scope: str) -> list[str]:
    """The study alone, or every study of its patient (the asked one first)."""
    if scope != "patient":
        return [study_instance_uid]
    others = [uid for uid in patient_studies(services().engine, study_instance_uid) if uid != study_instance_uid]
    return [study_instance_uid, *others]


def record_handover(uids: list[str], username: str | None) -> None:
    """110103 DICOM Instances Accessed (R): the patient and the studies given to Weasis."""
    studies = [stacks for uid in uids if (stacks := study_stacks(services().engine, uid))]
    if not studies:
        return
    first = studies[0]
    objects = [patient(patient_number(first.patient_id, first.issuer_of_patient_id), first.patient_name)]
    objects.extend(study(entry.study_instance_uid, entry.accession_number) for entry in studies)
    record(EventId.INSTANCES_ACCESSED, Action.READ, objects=tuple(objects), username=username)


def public_base() -> str:
    """The console's address as workstations reach it: `web.public_base_url`, else this request's."""
    configured = services().config.web.public_base_url.rstrip("/")
    return configured or request.url_root.rstrip("/")
