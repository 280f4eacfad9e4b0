"""A study moved to the deferred tier (a second folder, an S3 server: moto on loopback) is still
retrieved bit-exact by a real C-GET (DCMTK's getscu) through the running archive daemon, which reads
it through the retrieve rule from wherever it is."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from s3_server import credentials_file, make_bucket, s3_server
from servers import Daemon, archive_config, get_study, run, write_config

from appliance.archive import tiers
from appliance.archive.deferred import deferred_store
from appliance.config import load_config
from appliance.db import create_index_engine

MOVED_ON = date(2030, 1, 1)  # the samples are of November 2026: past three years of immediate access


def dataset_bytes(path: Path) -> bytes:
    """A DICOM file's data set, after the preamble and the file meta group (which each writer makes its own)."""
    data = path.read_bytes()
    group_length = struct.unpack("<I", data[140:144])[0]  # (0002,0000) UL, explicit VR little endian
    return data[144 + group_length :]


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with s3_server(tmp_path_factory.mktemp("moto") / "moto.log") as endpoint:
        make_bucket(endpoint, "deferred")
        yield endpoint


def tier_section(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    if kind == "folder":
        return {"deferred": "folder", "directory": str(tmp_path / "nas")}
    endpoint = request.getfixturevalue("s3_endpoint")
    s3 = {"endpoint_url": endpoint, "bucket": "deferred", "prefix": "site/", "region": "us-east-1"}
    return {"deferred": "s3", "s3": {**s3, "credentials_file": str(credentials_file(tmp_path / "s3-keys"))}}


@pytest.mark.parametrize("kind", ["folder", "s3"])
def test_a_deferred_study_is_retrieved_bit_exact_by_c_get(
    kind: str, samples: dict[str, list[Path]], tmp_path: Path, destination_port: int, request: pytest.FixtureRequest
) -> None:
    config = archive_config(tmp_path / "data", destination_port, tiers=tier_section(kind, tmp_path, request))
    config_path = write_config(tmp_path / "appliance.yaml", config)
    daemon = Daemon("appliance.daemons.archive", config_path, tmp_path / "dicom.log").start()
    try:
        run(
            [
                "storescu",
                "-aet",
                "STORESCU",
                "-aec",
                "APPLIANCE",
                "127.0.0.1",
                str(daemon.port),
                *map(str, samples["CT"]),
            ]
        )
        loaded = load_config(config_path)
        engine = create_index_engine(loaded.database_url)
        store = deferred_store(loaded.tiers, loaded.storage.data_directory)
        assert store is not None
        report = tiers.move_due(engine, tiers.file_store(loaded), store, 3, MOVED_ON)
        assert (report.studies, report.instances, report.failures) == (1, 3, ())
        assert not list((tmp_path / "data" / "archive").rglob("*.dcm"))

        study_uid = dcmread(samples["CT"][0]).StudyInstanceUID
        retrieved = get_study(
            daemon.port, tmp_path / "get", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={study_uid}"
        )
    finally:
        daemon.stop()
    originals = {dcmread(path).SOPInstanceUID: dataset_bytes(path) for path in samples["CT"]}
    copies = {dcmread(path).SOPInstanceUID: dataset_bytes(path) for path in retrieved}
    assert copies == originals
