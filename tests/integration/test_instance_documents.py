"""Each instance's DICOM JSON end to end: images sent by a real C-STORE (pynetdicom SCU) to the
running archive daemon are acknowledged without it; the worker, started then, makes from the change
feed the documents the ingest made before (`archive.documents`)."""

from __future__ import annotations

from pathlib import Path

from datagen import PATIENTS, encoded, make_instance
from pydicom.uid import CTImageStorage, generate_uid
from servers import Daemon, archive_config, associate, wait_for, write_config
from sqlalchemy import select

from appliance.archive.attributes import read_attributes
from appliance.config import load_config
from appliance.daemons.runtime import open_index
from appliance.db.schema import instance, instance_metadata


def test_the_running_worker_makes_the_documents_of_the_images_stored(tmp_path: Path) -> None:
    config_path = write_config(tmp_path / "appliance.yaml", archive_config(tmp_path / "data", 1))
    archive = Daemon("appliance.daemons.archive", config_path, tmp_path / "dicom.log").start()
    worker = Daemon("appliance.daemons.worker", config_path, tmp_path / "worker.log")
    study_uid, series_uid = generate_uid(), generate_uid()
    images = [make_instance("CT", PATIENTS[2], study_uid, series_uid, number) for number in range(1, 6)]
    engine = open_index(load_config(config_path))

    def stored() -> dict[str, tuple[str, str]]:
        statement = select(instance.c.sop_instance_uid, instance_metadata.c.document, instance_metadata.c.pixel_data_vr)
        with engine.connect() as connection:
            rows = connection.execute(statement.join(instance, instance.c.id == instance_metadata.c.instance_pk))
            return {row.sop_instance_uid: (row.document, row.pixel_data_vr) for row in rows}

    try:
        association = associate(archive.port, CTImageStorage)
        assert association.is_established
        try:
            assert [int(association.send_c_store(image).Status) for image in images] == [0] * 5
        finally:
            association.release()
        assert stored() == {}  # acknowledged without them; the worker is not running yet
        worker.start()
        wait_for(lambda: len(stored()) == 5, "the worker to make the five documents")
        expected = {}
        for image in images:
            document = read_attributes(encoded(image)).document
            assert document is not None
            expected[str(image.SOPInstanceUID)] = (document.document, document.pixel_data_vr)
        assert stored() == expected
    finally:
        engine.dispose()
        if worker.process is not None:
            worker.stop()
        archive.stop()
    assert "Traceback" not in worker.log()
