"""Storage tiers (R1): a study past its immediate-access period moves to a deferred folder or an S3
object store (moto's server on loopback), verified at the destination; it is still retrieved
bit-exact through the retrieve rule; a checksum mismatch at the destination keeps the original; it
can be brought back."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from datagen import PATIENTS, encoded, make_instance
from pydicom.uid import ExplicitVRLittleEndian
from s3_server import credentials_file, make_bucket, s3_server
from sqlalchemy import Engine, select

from appliance.archive import tiers
from appliance.archive.deferred import DeferredStore, FolderStore, deferred_store
from appliance.archive.index import Index
from appliance.archive.ingest import IncomingObject, Ingest, StoreOutcome
from appliance.archive.retrieve import payload, plan, source
from appliance.archive.search import Query, find
from appliance.archive.storage import FileStore
from appliance.config import S3Config, TiersConfig
from appliance.db.schema import instance

TODAY = date(2026, 12, 4)


def ingest_study(files: FileStore, engine: Engine, study_date: str, count: int = 3) -> tuple[str, dict[str, bytes]]:
    """A study of `count` CT images on `study_date`; its UID and each instance's bytes by SOP Instance UID."""
    ingest = Ingest(files, Index(engine))
    first = make_instance("CT", PATIENTS[0], study_date=study_date)
    sent: dict[str, bytes] = {}
    for number in range(1, count + 1):
        dataset = make_instance(
            "CT", PATIENTS[0], study_uid=first.StudyInstanceUID, series_uid=first.SeriesInstanceUID,
            instance_number=number, study_date=study_date,
        )  # fmt: skip
        data = encoded(dataset)
        incoming = IncomingObject(data, dataset.SOPInstanceUID, dataset.SOPClassUID, "TEST")
        assert ingest.store(incoming).outcome == StoreOutcome.STORED
        sent[dataset.SOPInstanceUID] = data
    return first.StudyInstanceUID, sent


def tier_config(deferred: str, directory: Path | None = None, endpoint: str = "", credentials: str = "") -> TiersConfig:
    s3 = S3Config(endpoint, "deferred", "cabinet/", "us-east-1", credentials)
    return TiersConfig(3, deferred, False, "03:30", directory, s3)


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with s3_server(tmp_path_factory.mktemp("moto") / "moto.log") as endpoint:
        make_bucket(endpoint, "deferred")
        yield endpoint


@pytest.fixture(params=["folder", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> DeferredStore:
    if request.param == "folder":
        config = tier_config("folder", directory=tmp_path / "nas")
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        config = tier_config("s3", endpoint=endpoint, credentials=str(credentials_file(tmp_path / "s3-credentials")))
    found = deferred_store(config, tmp_path / "data")
    assert found is not None
    return found


def retrieved_bytes(engine: Engine, files: FileStore, study_uid: str) -> dict[str, bytes]:
    """Each instance of the study as the retrieve rule serves it to a receiver taking the stored syntax."""
    found = plan(engine, Query("STUDY", {"StudyInstanceUID": study_uid}))
    out = {}
    for item in found.items:
        chosen = payload(source(files, item), item, found.coercion_for(item), [ExplicitVRLittleEndian])
        assert chosen.path is not None
        out[item.sop_instance_uid] = chosen.path.read_bytes()
    return out


def tiers_of(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.execute(select(instance.c.tier)).scalars())


def test_an_old_study_moves_verified_and_is_still_found_and_retrieved_bit_exact(
    engine: Engine, tmp_path: Path, store: DeferredStore
) -> None:
    files = FileStore(tmp_path / "data", 0, store)
    old_uid, old_bytes = ingest_study(files, engine, "20230101")
    recent_uid, _ = ingest_study(files, engine, "20240601")
    assert tiers.due_studies(engine, 3, TODAY) == [old_uid]

    report = tiers.move_due(engine, files, store, 3, TODAY)

    assert (report.studies, report.instances, report.failures) == (1, 3, ())
    assert report.size_bytes == sum(len(data) for data in old_bytes.values())
    assert tiers.due_studies(engine, 3, TODAY) == []
    assert not list((files.archive_directory / "2023").rglob("*.dcm"))  # originals removed
    assert len(list((files.archive_directory / "2024").rglob("*.dcm"))) == 3  # the recent study stays
    assert tiers_of(engine) == {"immediate", store.kind}
    assert [
        row["StudyInstanceUID"] for row in find(engine, Query("STUDY", {"StudyDate": "20230101-20231231"}), 10)
    ] == [old_uid]
    assert retrieved_bytes(engine, files, old_uid) == old_bytes
    assert tiers.deferred_instances(engine, old_uid) == 3
    usage = {entry.tier: entry for entry in tiers.usage(engine)}
    assert (usage[store.kind].studies, usage[store.kind].instances) == (1, 3)
    assert usage["immediate"].studies == 1 and recent_uid


def test_a_study_brought_back_is_on_the_main_storage_again(
    engine: Engine, tmp_path: Path, store: DeferredStore
) -> None:
    files = FileStore(tmp_path / "data", 0, store)
    study_uid, sent = ingest_study(files, engine, "20220315")
    tiers.move_due(engine, files, store, 3, TODAY)

    back = tiers.bring_back(engine, files, store, study_uid)

    assert back.instances == 3 and tiers_of(engine) == {"immediate"}
    assert retrieved_bytes(engine, files, study_uid) == sent
    on_disk = {hashlib.sha256(path.read_bytes()).hexdigest() for path in files.archive_directory.rglob("*.dcm")}
    assert on_disk == {hashlib.sha256(data).hexdigest() for data in sent.values()}
    with engine.connect() as connection:
        locations = list(connection.execute(select(instance.c.location)).scalars())
    assert locations == ["", "", ""]


class CorruptingFolder(FolderStore):
    """A deferred folder whose disk flips a byte of the second file it is given."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.puts = 0

    def put(self, relative_path: str, source: Path) -> str:
        location = super().put(relative_path, source)
        self.puts += 1
        if self.puts == 2:
            target = self.directory / location
            data = bytearray(target.read_bytes())
            data[-1] ^= 0xFF
            target.write_bytes(bytes(data))
        return location


def test_a_checksum_mismatch_at_the_destination_keeps_the_original(engine: Engine, tmp_path: Path) -> None:
    store = CorruptingFolder(tmp_path / "nas")
    files = FileStore(tmp_path / "data", 0, store)
    study_uid, sent = ingest_study(files, engine, "20200101")

    report = tiers.move_due(engine, files, store, 3, TODAY)

    assert report.studies == 0 and len(report.failures) == 1 and "differs" in report.failures[0]
    assert tiers_of(engine) == {"immediate"}
    assert not list((tmp_path / "nas").rglob("*.dcm"))  # the copies made are removed
    assert retrieved_bytes(engine, files, study_uid) == sent  # every original still in place


def test_a_deferred_object_altered_in_the_store_is_refused_on_retrieve(
    engine: Engine, tmp_path: Path, s3_endpoint: str
) -> None:
    config = tier_config("s3", endpoint=s3_endpoint, credentials=str(credentials_file(tmp_path / "credentials")))
    store = deferred_store(config, tmp_path / "data")
    assert store is not None
    files = FileStore(tmp_path / "data", 0, store)
    study_uid, _ = ingest_study(files, engine, "20190101", count=1)
    tiers.move_due(engine, files, store, 3, TODAY)
    item = plan(engine, Query("STUDY", {"StudyInstanceUID": study_uid})).items[0]
    client = make_bucket_client(s3_endpoint)
    client.put_object(Bucket="deferred", Key=item.location, Body=b"not the archived bytes")

    with pytest.raises(OSError, match="other bytes"):
        source(files, item)


def make_bucket_client(endpoint: str) -> object:
    import boto3
    from s3_server import ACCESS_KEY, SECRET_KEY

    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )  # fmt: skip
