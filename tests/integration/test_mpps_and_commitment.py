"""MPPS (N-CREATE / N-SET) and storage commitment with the report on a new association (W4),
driven by pynetdicom SCUs as a modality would."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from datagen import PATIENTS, make_instance
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom import AE, evt
from servers import Daemon, archive_config, associate, cli, free_port, wait_for, write_config
from sqlalchemy import select
from worklist_data import add_patient, new_order, schedule

from appliance.config import load_config
from appliance.db import create_index_engine, upgrade_schema
from appliance.db.schema import change, scheduled_step

MPPS = "1.2.840.10008.3.1.2.3.3"
COMMITMENT = "1.2.840.10008.1.20.1"
COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"
CT = "1.2.840.10008.5.1.4.1.1.2"


@pytest.fixture()
def modality_port() -> int:
    return free_port()


@pytest.fixture()
def archive_with_order(tmp_path: Path, modality_port: int) -> Iterator[Daemon]:
    config: dict[str, Any] = archive_config(tmp_path / "data", 1)
    config["peers"].append(
        {"ae_title": "MODALITY", "host": "127.0.0.1", "port": modality_port, "rights": ["store", "worklist"]}
    )
    config_path = write_config(tmp_path / "a.yaml", config)
    loaded = load_config(config_path)
    engine = create_index_engine(loaded.database_url)
    upgrade_schema(engine, loaded.storage.index_directory)
    schedule(engine, loaded, new_order(1, "CT", "MODALITY"), add_patient(engine, "IPP0001", "ŒUVRARD^Chloé"))
    engine.dispose()
    daemon = Daemon("appliance.daemons.archive", config_path, tmp_path / "dicom.log").start()
    yield daemon
    daemon.stop()


def steps_and_events(daemon: Daemon) -> tuple[list[str], list[str]]:
    engine = create_index_engine(load_config(daemon.config_path).database_url)
    with engine.connect() as connection:
        statuses = list(connection.execute(select(scheduled_step.c.status)).scalars())
        events = list(
            connection.execute(
                select(change.c.kind).where(change.c.kind.like("procedure-%")).order_by(change.c.id)
            ).scalars()
        )
    engine.dispose()
    return statuses, events


def performed_step(status: str) -> Dataset:
    dataset = Dataset()
    scheduled = Dataset()
    scheduled.AccessionNumber = "ACC00001"
    scheduled.StudyInstanceUID = ""
    dataset.ScheduledStepAttributesSequence = Sequence([scheduled])
    dataset.PatientName = "ŒUVRARD^Chloé"
    dataset.SpecificCharacterSet = "ISO_IR 192"
    dataset.PerformedProcedureStepStatus = status
    dataset.Modality = "CT"
    return dataset


def modality_listening(port: int, reports: queue.Queue[tuple[int, Dataset]]) -> Any:
    """The modality's storage commitment SCU, listening for the report; each report goes to `reports`."""

    def on_report(event: Any) -> tuple[int, None]:
        reports.put((event.event_type, event.event_information))
        return 0x0000, None

    modality = AE(ae_title="MODALITY")
    modality.add_supported_context(COMMITMENT, scu_role=True, scp_role=True)
    handlers = [(evt.EVT_N_EVENT_REPORT, on_report)]
    return modality.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers)


def commitment_request(images: list[Dataset], transaction_uid: str) -> Dataset:
    request = Dataset()
    request.TransactionUID = transaction_uid
    references = []
    for image in images:
        item = Dataset()
        item.ReferencedSOPClassUID = CT
        item.ReferencedSOPInstanceUID = image.SOPInstanceUID
        references.append(item)
    request.ReferencedSOPSequence = Sequence(references)
    return request


def test_mpps_in_progress_then_completed_updates_the_scheduled_step(archive_with_order: Daemon) -> None:
    assoc = associate(archive_with_order.port, MPPS, ae_title="MODALITY")
    uid = "1.2.826.0.1.3680043.10.1471.7.1"
    status, _ = assoc.send_n_create(performed_step("IN PROGRESS"), MPPS, uid)
    assert status.Status == 0x0000
    assert steps_and_events(archive_with_order) == (["IN PROGRESS"], ["procedure-in-progress"])
    duplicate, _ = assoc.send_n_create(performed_step("IN PROGRESS"), MPPS, uid)
    assert duplicate.Status == 0x0111
    completed = Dataset()
    completed.PerformedProcedureStepStatus = "COMPLETED"
    status, _ = assoc.send_n_set(completed, MPPS, uid)
    assert status.Status == 0x0000
    assert steps_and_events(archive_with_order) == (["COMPLETED"], ["procedure-in-progress", "procedure-completed"])
    again, _ = assoc.send_n_set(completed, MPPS, uid)
    assert again.Status == 0x0110  # may no longer be updated
    unknown, _ = assoc.send_n_set(completed, MPPS, "1.2.826.0.1.3680043.10.1471.7.999")
    assert unknown.Status == 0x0112
    wrong, _ = assoc.send_n_create(performed_step("COMPLETED"), MPPS, "1.2.826.0.1.3680043.10.1471.7.2")
    assert wrong.Status == 0x0106
    assoc.release()


def test_storage_commitment_reports_the_truth_on_a_new_association(
    archive_with_order: Daemon, modality_port: int
) -> None:
    reports: queue.Queue[tuple[int, Dataset]] = queue.Queue()
    listener = modality_listening(modality_port, reports)
    try:
        images = [make_instance("CT", PATIENTS[0], instance_number=number) for number in (1, 2)]
        assoc = associate(archive_with_order.port, CT, COMMITMENT, ae_title="MODALITY")
        for image in images:
            assert assoc.send_c_store(image).Status == 0x0000
        missing = make_instance("CT", PATIENTS[0])
        missing.SOPInstanceUID = "1.2.826.0.1.3680043.10.1471.9.9"
        request = commitment_request([*images, missing], "1.2.826.0.1.3680043.10.1471.8.1")
        status, _ = assoc.send_n_action(request, 1, COMMITMENT, COMMITMENT_INSTANCE)
        assert status.Status == 0x0000
        assoc.release()
        event_type, information = reports.get(timeout=60)
    finally:
        listener.shutdown()
    assert event_type == 2  # some failed
    assert information.TransactionUID == request.TransactionUID
    assert {item.ReferencedSOPInstanceUID for item in information.ReferencedSOPSequence} == {
        image.SOPInstanceUID for image in images
    }
    (failed,) = information.FailedSOPSequence
    assert failed.ReferencedSOPInstanceUID == "1.2.826.0.1.3680043.10.1471.9.9"
    assert failed.FailureReason == 0x0112
    wait_for(lambda: "delivered storage commitment" in archive_with_order.log(), "the report's delivery in the log")
    assert "2 committed, 1 failed" in archive_with_order.log()


def test_a_report_pending_when_the_archive_stops_is_delivered_after_restart(
    archive_with_order: Daemon, modality_port: int
) -> None:
    """The modality is off when the report is due: it waits in the outbox (appliance outbox list
    shows it), the archive is stopped and started again, the modality comes back: it gets it."""
    images = [make_instance("CT", PATIENTS[0], instance_number=number) for number in (1, 2)]
    assoc = associate(archive_with_order.port, CT, COMMITMENT, ae_title="MODALITY")
    for image in images:
        assert assoc.send_c_store(image).Status == 0x0000
    status, _ = assoc.send_n_action(
        commitment_request(images, "1.2.826.0.1.3680043.10.1471.8.2"), 1, COMMITMENT, COMMITMENT_INSTANCE
    )
    assoc.release()
    assert status.Status == 0x0000
    wait_for(lambda: "no association with MODALITY" in archive_with_order.log(), "a failed delivery attempt")
    archive_with_order.stop()
    listing = cli(archive_with_order.config_path, "outbox", "list").stdout
    assert "storage-commitment:MODALITY: 1 pending" in listing
    reports: queue.Queue[tuple[int, Dataset]] = queue.Queue()
    listener = modality_listening(modality_port, reports)
    try:
        archive_with_order.start()
        event_type, information = reports.get(timeout=120)
    finally:
        listener.shutdown()
    assert event_type == 1  # all committed
    assert information.TransactionUID == "1.2.826.0.1.3680043.10.1471.8.2"
    assert len(information.ReferencedSOPSequence) == 2
    wait_for(lambda: "1 pending" not in cli(archive_with_order.config_path, "outbox", "list").stdout, "delivery")
