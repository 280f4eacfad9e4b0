"""Lossy compression in the deferred tier on a running box (R1, `tiers.lossy.enabled`): the worker's
`tier-move` job (queued by `appliance jobs start`) makes an old CT study's images lossy copies in the
deferred folder or S3 bucket (moto on loopback); the archive daemon's C-FIND answers their new
UIDs, a C-GET (DCMTK's getscu) and a C-MOVE (movescu to storescp) retrieve them flagged lossy with
their originals referenced, and the key object selection and SR of the study come back unchanged."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from datagen import PATIENTS, make_enhanced_sr, make_key_object_selection, write_series
from pydicom import Dataset, dcmread
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind  # type: ignore[attr-defined]
from s3_server import credentials_file, make_bucket, s3_server
from servers import Daemon, archive_config, associate, cli, get_study, run, wait_for_port, write_config
from sqlalchemy import select

from appliance.config import load_config
from appliance.db import create_index_engine
from appliance.db.schema import instance

OLD_STUDY_DATE = "20200110"  # past three years of immediate access, whatever today is


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with s3_server(tmp_path_factory.mktemp("moto") / "moto.log") as endpoint:
        make_bucket(endpoint, "deferred")
        yield endpoint


def tier_section(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    lossy = {"enabled": True, "codec": "jpeg-2000", "compression_ratio": 10}
    if kind == "folder":
        return {"deferred": "folder", "directory": str(tmp_path / "nas"), "lossy": lossy}
    endpoint = request.getfixturevalue("s3_endpoint")
    s3 = {"endpoint_url": endpoint, "bucket": "deferred", "prefix": "site/", "region": "us-east-1",
          "credentials_file": str(credentials_file(tmp_path / "s3-keys"))}  # fmt: skip
    return {"deferred": "s3", "s3": s3, "lossy": lossy}


def old_study(directory: Path) -> tuple[list[Path], list[Path]]:
    """Three CT images of 2020 and, in the same study, a key object selection and an SR."""
    images = write_series(directory / "ct", 3, "CT", PATIENTS[0], study_date=OLD_STUDY_DATE)
    datasets = [dcmread(path) for path in images]
    others = []
    for name, made in (("kos.dcm", make_key_object_selection(datasets[:2])), ("sr.dcm", make_enhanced_sr(datasets))):
        made.save_as(directory / name, enforce_file_format=True)
        others.append(directory / name)
    return images, others


def image_level_uids(port: int, study_uid: str) -> set[str]:
    query = Dataset()
    query.QueryRetrieveLevel = "IMAGE"
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = ""
    query.SOPInstanceUID = ""
    association = associate(port, StudyRootQueryRetrieveInformationModelFind)
    try:
        answers = association.send_c_find(query, StudyRootQueryRetrieveInformationModelFind)
        return {str(identifier.SOPInstanceUID) for _status, identifier in answers if identifier is not None}
    finally:
        association.release()


def move_study(port: int, destination_port: int, study_uid: str, received: Path) -> list[Path]:
    """C-MOVE of the study to DCMTK's storescp (the configured peer STORESCP); the files it received."""
    received.mkdir()
    destination = subprocess.Popen(["storescp", "-aet", "STORESCP", "-od", str(received), str(destination_port)])
    try:
        wait_for_port(destination_port, "storescp", destination)
        run(["movescu", "-S", "-aet", "MOVESCU", "-aec", "APPLIANCE", "-aem", "STORESCP", "-k",
             "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}", "127.0.0.1", str(port)])  # fmt: skip
    finally:
        destination.terminate()
        destination.wait()
    return sorted(received.iterdir())


@pytest.mark.parametrize("kind", ["folder", "s3"])
def test_an_old_study_made_lossy_in_the_deferred_tier_is_found_and_retrieved(
    kind: str, tmp_path: Path, destination_port: int, request: pytest.FixtureRequest
) -> None:
    config = archive_config(tmp_path / "data", destination_port, tiers=tier_section(kind, tmp_path, request))
    config_path = write_config(tmp_path / "appliance.yaml", config)
    images, others = old_study(tmp_path / "sent")
    archive = Daemon("appliance.daemons.archive", config_path, tmp_path / "dicom.log").start()
    worker = Daemon("appliance.daemons.worker", config_path, tmp_path / "worker.log").start()
    try:
        run(["storescu", "-aet", "STORESCU", "-aec", "APPLIANCE", "127.0.0.1", str(archive.port),
             *map(str, images + others)])  # fmt: skip
        followed = cli(config_path, "jobs", "start", "tier-move")
        assert (
            "succeeded" in followed.stdout
            and "  studies_moved: 1\n" in followed.stdout
            and "  lossy_copies: 3\n" in followed.stdout
        )
        study_uid = str(dcmread(images[0]).StudyInstanceUID)
        found = image_level_uids(archive.port, study_uid)
        retrieved = get_study(
            archive.port, tmp_path / "get", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={study_uid}"
        )
        moved = move_study(archive.port, destination_port, study_uid, tmp_path / "moved")
    finally:
        worker.stop()
        archive.stop()
    originals = {str(dcmread(path).SOPInstanceUID) for path in images}
    copies = [dcmread(path) for path in retrieved]
    lossy = [copy for copy in copies if copy.get("LossyImageCompression") == "01"]
    assert len(lossy) == 3 and not {str(copy.SOPInstanceUID) for copy in lossy} & originals
    assert {str(copy.SourceImageSequence[0].ReferencedSOPInstanceUID) for copy in lossy} == originals
    assert all(copy.LossyImageCompressionMethod == "ISO_15444_1" for copy in lossy)  # (Image Type: unit tests)
    assert found == {str(copy.SOPInstanceUID) for copy in copies}  # C-FIND answers what C-GET sends
    assert {str(dcmread(path).SOPInstanceUID) for path in moved} == found  # C-MOVE sends the same
    by_uid = {str(copy.SOPInstanceUID): copy for copy in copies}
    for path in others:  # no pixels: the same instance, element for element (getscu writes its own encoding)
        sent = dcmread(path)
        assert by_uid[str(sent.SOPInstanceUID)].to_json_dict() == sent.to_json_dict()
    engine = create_index_engine(load_config(config_path).database_url)
    with engine.connect() as connection:
        flagged = set(connection.execute(select(instance.c.lossy_source_uid).where(instance.c.lossy)).scalars())
        unchanged = set(connection.execute(select(instance.c.sop_instance_uid).where(~instance.c.lossy)).scalars())
    engine.dispose()
    assert flagged == originals and unchanged == {str(dcmread(path).SOPInstanceUID) for path in others}
