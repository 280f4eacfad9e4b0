"""The DICOMweb routes (PS3.18): QIDO-RS, WADO-RS, STOW-RS under /dicomweb, WADO-URI at /wado.

Each view decodes the request, makes its domain call (`archive.search`, `archive.retrieve`,
`archive.metadata`, `archive.pixels`, `archive.ingest`), answers in the media type asked for, and
records one audit event (`auditing`). Every route is `@tools`: a bearer token or the console
session, 401 otherwise (see `appliance.web.auth.access`).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Iterator

from flask import Blueprint, Response, current_app, request, stream_with_context
from flask.typing import ResponseReturnValue
from pydicom.uid import ExplicitVRLittleEndian
from sqlalchemy.exc import SQLAlchemyError

from appliance.accounts.roles import Permission
from appliance.archive import metadata, metadata_cache, pixels, retrieve, tiers
from appliance.archive.index import Index
from appliance.archive.ingest import Ingest
from appliance.archive.retrieve import CannotSend, Delivery, RetrieveItem, RetrievePlan
from appliance.archive.search import Query, QueryError, find
from appliance.archive.storage import FileStore
from appliance.audit.events import EventId, Outcome
from appliance.web.auth.access import requires, tools
from appliance.web.dicomweb import accept, auditing, multipart, qido, stow
from appliance.web.dicomweb.accept import AS_STORED
from appliance.web.services import services

LOGGER = logging.getLogger(__name__)

blueprint = Blueprint("dicomweb", __name__)
# STOW-RS needs no CSRF token: see `stow` (a multipart/related body cannot come from another site).
blueprint.record_once(lambda state: state.app.extensions["csrf"].exempt(blueprint))

ROOT = "/dicomweb"
STUDY = ROOT + "/studies/<study>"
SERIES = STUDY + "/series/<series>"
INSTANCE = SERIES + "/instances/<instance>"
INGEST = "appliance.dicomweb-ingest"
METADATA_CACHE = "appliance.dicomweb-metadata"
THUMBNAIL_SIZE = (128, 128)


def files() -> FileStore:
    """The archive's files, with the deferred tier (R1) to read from."""
    return tiers.file_store(services().config)


def base_url() -> str:
    """The DICOMweb root as workstations reach it: `web.public_base_url`, else this request's host."""
    public = services().config.web.public_base_url.rstrip("/")
    return (public or request.host_url.rstrip("/")) + ROOT


def plain(status: int, text: str) -> Response:
    return Response(text + "\n", status, mimetype="text/plain")


def dicom_json(body: bytes, status: int = 200) -> Response:
    """A DICOM JSON answer; Content-Type exactly `application/dicom+json` (dicomweb-client ignores
    a reply whose type carries a charset)."""
    response = Response(body, status)
    response.headers["Content-Type"] = accept.DICOM_JSON
    return response


# QIDO-RS ------------------------------------------------------------------------------------------


@blueprint.get(ROOT + "/studies")
@requires(Permission.SEARCH_PATIENTS)
@tools
def search_studies() -> ResponseReturnValue:
    return search("STUDY", {})


@blueprint.get(STUDY + "/series")
@requires(Permission.SEARCH_PATIENTS)
@tools
def search_study_series(study: str) -> ResponseReturnValue:
    return search("SERIES", {"StudyInstanceUID": study})


@blueprint.get(ROOT + "/series")
@requires(Permission.SEARCH_PATIENTS)
@tools
def search_series() -> ResponseReturnValue:
    return search("SERIES", {})


@blueprint.get(SERIES + "/instances")
@requires(Permission.SEARCH_PATIENTS)
@tools
def search_series_instances(study: str, series: str) -> ResponseReturnValue:
    return search("IMAGE", {"StudyInstanceUID": study, "SeriesInstanceUID": series})


@blueprint.get(STUDY + "/instances")
@requires(Permission.SEARCH_PATIENTS)
@tools
def search_study_instances(study: str) -> ResponseReturnValue:
    return search("IMAGE", {"StudyInstanceUID": study})


@blueprint.get(ROOT + "/instances")
@requires(Permission.SEARCH_PATIENTS)
@tools
def search_instances() -> ResponseReturnValue:
    return search("IMAGE", {})


def search(level: str, path_keys: dict[str, str]) -> ResponseReturnValue:
    """One QIDO-RS request: its matches as a DICOM JSON array (an empty array when none)."""
    if not accept.accepts_json(request.headers.get("Accept")):
        return plain(406, "QIDO-RS answers in application/dicom+json only")
    try:
        asked = qido.decode(level, request.args.to_dict(flat=False), path_keys)
        matches = find(services().engine, asked.query, asked.limit, asked.offset)
    except (qido.BadQuery, QueryError) as error:
        auditing.queried([], Outcome.MINOR_FAILURE, str(error))
        return plain(400, str(error))
    overflow = len(matches) > asked.limit
    matches = matches[: asked.limit]
    wanted = list(asked.query.keys)
    answer = [qido.dicom_json(match, wanted, retrieve_url(match, level)) for match in matches]
    auditing.queried(matches)
    response = dicom_json(json_bytes(answer))
    warnings = []
    if asked.unsupported:
        names = ", ".join(asked.unsupported)
        warnings.append(f'299 {request.host} "The following attributes are not supported for matching: {names}"')
    if overflow and not asked.asked_limit:
        warnings.append(f'299 {request.host} "There are additional results that can be requested"')
    if warnings:
        response.headers["Warning"] = ", ".join(warnings)
    return response


def json_bytes(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def retrieve_url(match: dict[str, object], level: str) -> str:
    url = f"{base_url()}/studies/{match['StudyInstanceUID']}"
    if level in ("SERIES", "IMAGE"):
        url += f"/series/{match['SeriesInstanceUID']}"
    if level == "IMAGE":
        url += f"/instances/{match['SOPInstanceUID']}"
    return url


# WADO-RS: objects ---------------------------------------------------------------------------------


@blueprint.get(STUDY)
@requires(Permission.SEARCH_PATIENTS)
@tools
def retrieve_study(study: str) -> ResponseReturnValue:
    return retrieve_objects(Query("STUDY", {"StudyInstanceUID": study}))


@blueprint.get(SERIES)
@requires(Permission.SEARCH_PATIENTS)
@tools
def retrieve_series(study: str, series: str) -> ResponseReturnValue:
    return retrieve_objects(Query("SERIES", {"StudyInstanceUID": study, "SeriesInstanceUID": series}))


@blueprint.get(INSTANCE)
@requires(Permission.SEARCH_PATIENTS)
@tools
def retrieve_instance(study: str, series: str, instance: str) -> ResponseReturnValue:
    keys = {"StudyInstanceUID": study, "SeriesInstanceUID": series, "SOPInstanceUID": instance}
    return retrieve_objects(Query("IMAGE", keys))


def retrieve_objects(query: Query) -> ResponseReturnValue:
    """The objects under a study, series or instance as multipart/related application/dicom parts,
    each in the syntax the retrieve rule chose, with the current identity."""
    syntaxes = accept.dicom_syntaxes(request.headers.get("Accept"))
    if not syntaxes:
        return plain(406, 'objects are sent as multipart/related; type="application/dicom"')
    planned = retrieve.plan(services().engine, query)
    if not planned.items:
        return plain(404, "no such object in the archive")
    sendable, unsendable = by_sendability(planned.items, syntaxes)
    if not sendable:
        return plain(406, "no object can be sent in the syntaxes accepted (the archive never makes them lossy)")
    boundary = multipart.new_boundary()
    body = object_parts(planned, sendable, unsendable, syntaxes, boundary)
    return Response(
        stream_with_context(multipart.stream(boundary, body)),
        content_type=multipart.content_type(accept.DICOM, boundary),
    )


def by_sendability(items: Iterable[RetrieveItem], syntaxes: list[str]) -> tuple[list[RetrieveItem], list[RetrieveItem]]:
    """The items that can be sent in one of `syntaxes`, and those that cannot (one pass: comparing
    600 items with each other took longer than reading their files)."""
    sendable: list[RetrieveItem] = []
    unsendable: list[RetrieveItem] = []
    for item in items:
        (sendable if can_send(item, syntaxes) else unsendable).append(item)
    return sendable, unsendable


def can_send(item: RetrieveItem, syntaxes: list[str]) -> bool:
    try:
        retrieve.choose_syntax(item.transfer_syntax_uid, accept.resolved(syntaxes, item.transfer_syntax_uid))
    except CannotSend:
        return False
    return True


def object_parts(
    planned: RetrievePlan,
    sendable: list[RetrieveItem],
    unsendable: list[RetrieveItem],
    syntaxes: list[str],
    boundary: str,
) -> Iterator[tuple[bytes, bytes]]:
    """Each object's part header (made once per transfer syntax) and bytes; the audit event once the
    last part went (or failed)."""
    store = files()
    sent: list[RetrieveItem] = []
    failed = list(unsendable)
    headers: dict[str, bytes] = {}
    try:
        for item in sendable:
            accepted = accept.resolved(syntaxes, item.transfer_syntax_uid)
            try:
                chosen = retrieve.payload(retrieve.source(store, item), item, planned.coercion_for(item), accepted)
                content = retrieve.encoded(chosen)
            except (CannotSend, OSError) as error:
                LOGGER.warning("instance %s not sent over DICOMweb: %s", item.sop_instance_uid, error)
                failed.append(item)
                continue
            if chosen.delivery is not Delivery.AS_STORED:
                LOGGER.debug("instance %s sent %s", item.sop_instance_uid, chosen.delivery.value)
            syntax = chosen.transfer_syntax_uid
            if syntax not in headers:
                headers[syntax] = multipart.part_header(boundary, accept.DICOM, syntax)
            yield headers[syntax], content
            sent.append(item)
    finally:
        auditing.retrieved(EventId.INSTANCES_TRANSFERRED, sent, failed)


# WADO-RS: metadata --------------------------------------------------------------------------------


@blueprint.get(STUDY + "/metadata")
@requires(Permission.SEARCH_PATIENTS)
@tools
def study_metadata(study: str) -> ResponseReturnValue:
    return serve_metadata(metadata.Scope(study))


@blueprint.get(SERIES + "/metadata")
@requires(Permission.SEARCH_PATIENTS)
@tools
def series_metadata(study: str, series: str) -> ResponseReturnValue:
    return serve_metadata(metadata.Scope(study, series))


@blueprint.get(INSTANCE + "/metadata")
@requires(Permission.SEARCH_PATIENTS)
@tools
def instance_metadata(study: str, series: str, instance: str) -> ResponseReturnValue:
    return serve_metadata(metadata.Scope(study, series, instance))


def serve_metadata(scope: metadata.Scope) -> ResponseReturnValue:
    """The DICOM JSON of every instance in scope, from the stored documents, gzip-compressed
    when the client accepts it; a study's or series' answer from the worker's cache while it is
    current (`archive.metadata_cache`). An ETag names the content: If-None-Match gets 304. Every
    answer, 304 included, is audited."""
    if not accept.accepts_json(request.headers.get("Accept")):
        return plain(406, "metadata is sent as application/dicom+json only")
    compressed = request.accept_encodings["gzip"] > 0
    found = prepared_metadata(scope, compressed)
    if found is None:
        return plain(404, "no such object in the archive")
    auditing.retrieved(EventId.INSTANCES_ACCESSED, study_items(scope.study_instance_uid), [])
    entity_tag = found.entity_tag + ("-gzip" if compressed else "")  # one tag per representation
    if request.if_none_match.contains_weak(entity_tag):
        response = Response(status=304)
    else:
        response = dicom_json(found.compressed if compressed else found.plain)
        if compressed:
            response.headers["Content-Encoding"] = "gzip"
    response.set_etag(entity_tag)
    response.headers["Vary"] = "Accept-Encoding"
    return response


def prepared_metadata(scope: metadata.Scope, compressed: bool) -> metadata_cache.Prepared | None:
    """A study's or series' metadata from the cache; one instance's made for this request."""
    if scope.sop_instance_uid:
        text = metadata.metadata(services().engine, scope, base_url())
        return None if text is None else metadata_cache.prepared(text, compressed)
    cache = metadata_cache_of_worker()
    return cache.compressed(scope, base_url()) if compressed else cache.uncompressed(scope, base_url())


CACHE_LOCK = threading.Lock()


def metadata_cache_of_worker() -> metadata_cache.MetadataCache:
    """This worker's metadata cache (each gunicorn worker builds its own application)."""
    with CACHE_LOCK:
        found: metadata_cache.MetadataCache | None = current_app.extensions.get(METADATA_CACHE)
        if found is None:
            found = current_app.extensions[METADATA_CACHE] = metadata_cache.MetadataCache(services().engine)
    return found


def study_items(study_uid: str) -> list[RetrieveItem]:
    """A stand-in item naming the study, for the audit event (its patient and accession)."""
    return [RetrieveItem("", "", "", "", study_uid)]


# WADO-RS: frames, rendered, thumbnails ------------------------------------------------------------


@blueprint.get(INSTANCE + "/frames/<frame_list>")
@requires(Permission.SEARCH_PATIENTS)
@tools
def retrieve_frames(study: str, series: str, instance: str, frame_list: str) -> ResponseReturnValue:
    """Frames as multipart/related parts, each typed by its encoding (octet-stream when native,
    image/jls for JPEG-LS…) with its transfer syntax."""
    try:
        numbers = [int(number) for number in frame_list.split(",") if number.strip()]
    except ValueError:
        return plain(400, "a frame list is frame numbers separated by commas")
    syntaxes = accept.frame_syntaxes(request.headers.get("Accept"))
    if not numbers or not syntaxes:
        return plain(400 if not numbers else 406, "no frame asked" if not numbers else "frames are multipart/related")
    item = one_instance(study, series, instance)
    if item is None:
        return plain(404, "no such object in the archive")
    try:
        syntax = accept.resolved(syntaxes, item.transfer_syntax_uid)
        found = pixels.frames(retrieve.source(files(), item), numbers, syntax)
    except pixels.NoSuchFrame as error:
        return plain(404, str(error))
    except CannotSend as error:
        return plain(406, str(error))
    except OSError:
        return unreadable(item)
    auditing.retrieved(EventId.INSTANCES_ACCESSED, [item], [])
    boundary = multipart.new_boundary()
    parts = [
        (multipart.part_header(boundary, accept.frame_media_type(frame.transfer_syntax_uid), frame.transfer_syntax_uid),
         frame.data)
        for frame in found
    ]  # fmt: skip
    first_type = accept.frame_media_type(found[0].transfer_syntax_uid)
    body = b"".join(multipart.stream(boundary, parts))
    return Response(body, content_type=multipart.content_type(first_type, boundary))


def unreadable(item: RetrieveItem) -> Response:
    """The stored file of an indexed instance cannot be read (`appliance archive verify` says more)."""
    LOGGER.error("instance %s: its stored file cannot be read", item.sop_instance_uid)
    auditing.retrieved(EventId.INSTANCES_ACCESSED, [], [item], "the stored file cannot be read")
    return plain(500, "the stored file cannot be read")


def one_instance(study: str, series: str, instance: str) -> RetrieveItem | None:
    keys = {"StudyInstanceUID": study, "SeriesInstanceUID": series, "SOPInstanceUID": instance}
    planned = retrieve.plan(services().engine, Query("IMAGE", keys))
    return planned.items[0] if planned.items else None


@blueprint.get(INSTANCE + "/rendered")
@requires(Permission.SEARCH_PATIENTS)
@tools
def rendered_instance(study: str, series: str, instance: str) -> ResponseReturnValue:
    return rendered(one_instance(study, series, instance), 1, thumbnail=False)


@blueprint.get(INSTANCE + "/frames/<int:frame>/rendered")
@requires(Permission.SEARCH_PATIENTS)
@tools
def rendered_frame(study: str, series: str, instance: str, frame: int) -> ResponseReturnValue:
    return rendered(one_instance(study, series, instance), frame, thumbnail=False)


@blueprint.get(INSTANCE + "/thumbnail")
@requires(Permission.SEARCH_PATIENTS)
@tools
def instance_thumbnail(study: str, series: str, instance: str) -> ResponseReturnValue:
    return rendered(one_instance(study, series, instance), 1, thumbnail=True)


@blueprint.get(SERIES + "/thumbnail")
@requires(Permission.SEARCH_PATIENTS)
@tools
def series_thumbnail(study: str, series: str) -> ResponseReturnValue:
    return rendered(middle_image(study, series), 1, thumbnail=True)


@blueprint.get(STUDY + "/thumbnail")
@requires(Permission.SEARCH_PATIENTS)
@tools
def study_thumbnail(study: str) -> ResponseReturnValue:
    first = find(services().engine, Query("SERIES", {"StudyInstanceUID": study, "Rows": ""}), 1)
    series = str(first[0]["SeriesInstanceUID"]) if first else ""
    return rendered(middle_image(study, series) if series else None, 1, thumbnail=True)


def middle_image(study: str, series: str) -> RetrieveItem | None:
    """The middle image of a series (what its thumbnail shows)."""
    keys = {"StudyInstanceUID": study, "SeriesInstanceUID": series}
    items = retrieve.plan(services().engine, Query("SERIES", keys)).items
    return items[len(items) // 2] if items else None


def rendered(item: RetrieveItem | None, frame: int, thumbnail: bool) -> ResponseReturnValue:
    """A JPEG or PNG of one frame: the window and size of the query (`window=C,W[,function]`,
    `viewport=rows,columns`, `quality`), else the object's window and its own size (128 pixels for
    a thumbnail)."""
    media_type = accept.rendered_type(request.headers.get("Accept"))
    if media_type is None:
        return plain(406, "rendered images are image/jpeg or image/png")
    if item is None:
        return plain(404, "no such object in the archive")
    try:
        rendering = rendering_asked(media_type, request.args.get("window"), request.args.get("viewport"), thumbnail)
        image = pixels.render(retrieve.source(files(), item), frame, rendering)
    except ValueError as error:
        return plain(400, str(error))
    except pixels.NoSuchFrame as error:
        return plain(404, str(error))
    except CannotSend as error:
        return plain(406, str(error))
    except OSError:
        return unreadable(item)
    auditing.retrieved(EventId.INSTANCES_ACCESSED, [item], [])
    return Response(image, mimetype=media_type)


def rendering_asked(media_type: str, window: str | None, viewport: str | None, thumbnail: bool) -> pixels.Rendering:
    """PS3.18 8.3.5.1.3 query parameters; ValueError when one cannot be read."""
    chosen_window = None
    if window:
        center, width = (float(part) for part in window.split(",")[:2])
        chosen_window = pixels.Window(center, width)
    size: tuple[int, int] | None = THUMBNAIL_SIZE if thumbnail else None
    if viewport:
        rows, columns = (int(float(part)) for part in viewport.split(",")[:2])
        size = (rows, columns)
    quality = int(request.args.get("quality", "90"))
    return pixels.Rendering(media_type, chosen_window, size, min(max(quality, 1), 100))


# WADO-URI -----------------------------------------------------------------------------------------


@blueprint.get("/wado")
@requires(Permission.SEARCH_PATIENTS)
@tools
def wado_uri() -> ResponseReturnValue:
    """PS3.18 9 (WADO-URI, what Weasis manifests use): one object as application/dicom (in
    `transferSyntax`; `*` as stored, Explicit VR Little Endian when absent), or rendered as JPEG
    or PNG (the default is JPEG)."""
    arguments = request.args
    if arguments.get("requestType") != "WADO" or not arguments.get("objectUID"):
        return plain(400, "requestType=WADO and objectUID are needed")
    keys = {
        "StudyInstanceUID": arguments.get("studyUID", ""),
        "SeriesInstanceUID": arguments.get("seriesUID", ""),
        "SOPInstanceUID": arguments.get("objectUID", ""),
    }
    planned = retrieve.plan(services().engine, Query("IMAGE", keys))
    if not planned.items:
        return plain(404, "no such object in the archive")
    content_types = [entry.strip().split(";")[0] for entry in arguments.get("contentType", pixels.JPEG).split(",")]
    if accept.DICOM in content_types:
        return wado_object(planned, arguments.get("transferSyntax", ""))
    media_type = next((entry for entry in content_types if entry in pixels.RENDERED_TYPES), None)
    if media_type is None:
        return plain(406, "contentType: application/dicom, image/jpeg or image/png")
    return wado_image(planned.items[0], media_type)


def wado_object(planned: RetrievePlan, transfer_syntax: str) -> ResponseReturnValue:
    item = planned.items[0]
    syntax = transfer_syntax or ExplicitVRLittleEndian
    accepted = [item.transfer_syntax_uid if syntax == AS_STORED else syntax]
    try:
        chosen = retrieve.payload(retrieve.source(files(), item), item, planned.coercion_for(item), accepted)
        content = retrieve.encoded(chosen)
    except CannotSend as error:
        auditing.retrieved(EventId.INSTANCES_TRANSFERRED, [], [item], str(error))
        return plain(406, str(error))
    except OSError:
        return unreadable(item)
    auditing.retrieved(EventId.INSTANCES_TRANSFERRED, [item], [])
    return Response(content, mimetype=accept.DICOM)


def wado_image(item: RetrieveItem, media_type: str) -> ResponseReturnValue:
    arguments = request.args
    try:
        window = None
        if arguments.get("windowCenter") and arguments.get("windowWidth"):
            window = pixels.Window(float(arguments["windowCenter"]), float(arguments["windowWidth"]))
        size = None
        if arguments.get("rows") or arguments.get("columns"):
            rows = int(arguments.get("rows") or arguments.get("columns") or 0)
            size = (rows, int(arguments.get("columns") or rows))
        quality = int(arguments.get("imageQuality", "90"))
        frame = int(arguments.get("frameNumber", "1"))
        rendering = pixels.Rendering(media_type, window, size, min(max(quality, 1), 100))
        image = pixels.render(retrieve.source(files(), item), frame, rendering)
    except ValueError as error:
        return plain(400, str(error))
    except pixels.NoSuchFrame as error:
        return plain(404, str(error))
    except CannotSend as error:
        return plain(406, str(error))
    except OSError:
        return unreadable(item)
    auditing.retrieved(EventId.INSTANCES_ACCESSED, [item], [])
    return Response(image, mimetype=media_type)


# STOW-RS ------------------------------------------------------------------------------------------


@blueprint.post(ROOT + "/studies")
@requires(Permission.STORE_IMAGES)
@tools
def store_instances() -> ResponseReturnValue:
    return store("")


@blueprint.post(STUDY)
@requires(Permission.STORE_IMAGES)
@tools
def store_study_instances(study: str) -> ResponseReturnValue:
    return store(study)


def store(study: str) -> ResponseReturnValue:
    """STOW-RS: every part checked first (a malformed body stores nothing), then each object
    through the archive's one ingest, answered as DICOM JSON (PS3.18 10.5.3)."""
    request.max_content_length = stow.MAXIMUM_BYTES
    try:
        declared, boundary = multipart.boundary_of(request.headers.get("Content-Type"))
    except multipart.MalformedMultipart as error:
        return plain(415 if not request.mimetype.startswith("multipart/") else 400, str(error))
    if declared.media_type != accept.MULTIPART_RELATED or declared.parameters.get("type", accept.DICOM) != accept.DICOM:
        return plain(415, 'STOW-RS takes multipart/related; type="application/dicom"')
    store_files = files()
    try:
        results = stow.store_body(request.stream, boundary, ingest_for(store_files), store_files, study)
    except multipart.MalformedMultipart as error:
        return plain(400, f"malformed multipart body, nothing stored: {error}")
    except SQLAlchemyError:
        LOGGER.exception("STOW-RS failed")
        return plain(503, "the archive index is not available")
    auditing.stored([result for result, _ in results])
    status, reply = stow.reply(results, base_url(), study)
    return dicom_json(json_bytes(reply), status)


INGEST_LOCK = threading.Lock()


def ingest_for(store_files: FileStore) -> Ingest:
    """The application's one ingest (its in-process locks shared by every request thread)."""
    with INGEST_LOCK:
        found: Ingest | None = current_app.extensions.get(INGEST)
        if found is None:
            found = current_app.extensions[INGEST] = Ingest(store_files, Index(services().engine))
    return found
