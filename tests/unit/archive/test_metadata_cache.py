"""The metadata cache: an answer is built once, then served while its version holds; every change
that alters what the metadata shows (a new or deleted instance, a compression, a tier move, a new
identity, a confirmed purge) makes the next request build it anew. Memory stays bounded."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from datagen import PATIENTS, encoded, make_instance
from pydicom.uid import JPEGLSLossless, generate_uid
from sqlalchemy import Engine, delete, select, update

from appliance.archive import tiers
from appliance.archive.deferred import FolderStore
from appliance.archive.index import Index
from appliance.archive.ingest import Ingest, StoreOutcome
from appliance.archive.lossless import LosslessCompressor
from appliance.archive.metadata import Scope
from appliance.archive.metadata_cache import MetadataCache, Prepared
from appliance.archive.storage import FileStore
from appliance.db.schema import instance, patient, study

BASE = "https://pacs.cabinet.lan/dicomweb"


def archive(ingest: Ingest, study_uid: str, series_uid: str, numbers: range) -> None:
    for number in numbers:
        dataset = make_instance("CT", PATIENTS[0], study_uid, series_uid, number)
        assert ingest.store_object(encoded(dataset), "TEST").outcome is StoreOutcome.STORED


def documents(prepared: Prepared | None) -> list[dict[str, dict[str, object]]]:
    assert prepared is not None
    found: list[dict[str, dict[str, object]]] = json.loads(gzip.decompress(prepared.compressed))
    return found


def test_built_once_then_rebuilt_after_each_change(engine: Engine, tmp_path: Path) -> None:
    files = FileStore(tmp_path / "data", 0)
    ingest = Ingest(files, Index(engine))
    study_uid, series_uid = generate_uid(), generate_uid()
    archive(ingest, study_uid, series_uid, range(1, 3))
    cache = MetadataCache(engine)
    scope = Scope(study_uid, series_uid)
    first = cache.compressed(scope, BASE)
    assert cache.compressed(scope, BASE) == first and cache.builds == 1  # served from the cache
    assert len(documents(first)) == 2

    archive(ingest, study_uid, series_uid, range(3, 4))  # a new instance
    assert len(documents(cache.compressed(scope, BASE))) == 3 and cache.builds == 2

    with engine.begin() as connection:  # an ADT update of the patient's identity
        connection.execute(update(patient).values(patient_name="CŒUR^Éléonore", updated_at=datetime.now(UTC)))
    renamed = documents(cache.compressed(scope, BASE))
    assert renamed[0]["00100010"]["Value"] == [{"Alphabetic": "CŒUR^Éléonore"}] and cache.builds == 3

    report = LosslessCompressor(ingest.index, files, JPEGLSLossless, timedelta(0)).run_once(executor=None)
    assert report.compressed == 3
    compressed = cache.compressed(scope, BASE)
    assert {document["00020010"]["Value"][0] for document in documents(compressed)} == {JPEGLSLossless}  # type: ignore[index]
    assert cache.builds == 4

    moved = tiers.move_study(engine, files, FolderStore(tmp_path / "nas"), study_uid)
    assert moved.instances == 3
    assert cache.compressed(scope, BASE) is not None and cache.builds == 5

    with engine.begin() as connection:  # an instance deleted
        newest = connection.execute(select(instance.c.id).order_by(instance.c.id.desc()).limit(1)).scalar_one()
        connection.execute(delete(instance).where(instance.c.id == newest))
    assert len(documents(cache.compressed(scope, BASE))) == 2 and cache.builds == 6

    with engine.begin() as connection:  # a confirmed purge hides the study at once (R2)
        connection.execute(update(study).values(purge_requested_at=datetime.now(UTC)))
    assert cache.compressed(scope, BASE) is None


def test_plain_bytes_kept_once_asked_and_keys_by_base_url(engine: Engine, tmp_path: Path) -> None:
    ingest = Ingest(FileStore(tmp_path / "data", 0), Index(engine))
    study_uid, series_uid = generate_uid(), generate_uid()
    archive(ingest, study_uid, series_uid, range(1, 3))
    cache = MetadataCache(engine)
    scope = Scope(study_uid, series_uid)
    zipped = cache.compressed(scope, BASE)
    assert zipped is not None and zipped.plain == b"" and cache.entries[(scope, BASE)].plain is None
    plain = cache.uncompressed(scope, BASE)
    assert plain is not None and plain.plain == gzip.decompress(zipped.compressed)
    assert plain.entity_tag == zipped.entity_tag and cache.builds == 1
    other = cache.compressed(scope, "http://127.0.0.1:8080/dicomweb")
    assert other is not None and other.entity_tag != zipped.entity_tag and cache.builds == 2
    assert cache.compressed(Scope(study_uid), BASE) is not None  # the study's answer, kept apart
    assert cache.compressed(Scope(generate_uid()), BASE) is None


def test_memory_is_bounded_least_recently_used_out(engine: Engine, tmp_path: Path) -> None:
    ingest = Ingest(FileStore(tmp_path / "data", 0), Index(engine))
    scopes = []
    for _ in range(3):
        study_uid, series_uid = generate_uid(), generate_uid()
        archive(ingest, study_uid, series_uid, range(1, 3))
        scopes.append(Scope(study_uid, series_uid))
    first = MetadataCache(engine).compressed(scopes[0], BASE)
    assert first is not None
    cache = MetadataCache(engine, maximum_bytes=len(first.compressed) * 2 + 100)  # about two answers
    for scope in scopes:
        cache.compressed(scope, BASE)
    assert [key[0] for key in cache.entries] == scopes[1:] and cache.size <= cache.maximum_bytes
    tiny = MetadataCache(engine, maximum_bytes=10)
    assert tiny.compressed(scopes[0], BASE) is not None and not tiny.entries  # served, not kept
