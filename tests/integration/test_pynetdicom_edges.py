"""Edge cases driven by a pynetdicom SCU: malformed objects, duplicates, cancel, limits, bad peers.

Bad input gets a failure status or a rejection, never a crash, and nothing half-stored.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from datagen import PATIENTS, encoded, make_instance
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, _config, build_role, dsutils, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    MRImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    Verification,
)
from servers import Daemon, archive_config, associate, cli, write_config

CANNOT_UNDERSTAND = 0xC000
SUCCESS = 0x0000
CANCEL = 0xFE00
PENDING = 0xFF00
OUT_OF_RESOURCES = 0xA700


@pytest.fixture()
def association(archive: Daemon) -> Iterator[Association]:
    assoc = associate(archive.port, Verification, MRImageStorage, StudyRootQueryRetrieveInformationModelFind)
    assert assoc.is_established
    yield assoc
    if assoc.is_established:
        assoc.release()


def send_bytes(assoc: Association, data: bytes, directory: Path) -> int:
    """Send a file's bytes as they are (no pydicom re-encoding), return the C-STORE status."""
    path = directory / "object.dcm"
    path.write_bytes(data)
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        status = assoc.send_c_store(path)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = previous
    return int(status.Status)


def instance_count(archive: Daemon) -> int:
    line = next(
        line for line in cli(archive.config_path, "archive", "stats").stdout.splitlines() if "instances" in line
    )
    return int(line.split()[1])


def archive_holds_no_file(archive: Daemon) -> bool:
    data = archive.config_path.parent / "data"
    return not list((data / "archive").rglob("*.dcm")) and not list((data / "incoming").iterdir())


def test_truncated_dataset_is_refused(association: Association, archive: Daemon, tmp_path: Path) -> None:
    data = encoded(make_instance("MR"))
    assert send_bytes(association, data[: len(data) - 1000], tmp_path) == CANNOT_UNDERSTAND
    assert archive_holds_no_file(archive)
    assert association.send_c_echo().Status == SUCCESS


def test_bad_vr_is_refused(association: Association, archive: Daemon, tmp_path: Path) -> None:
    data = encoded(make_instance("MR"))
    position = data.find(b"\x08\x00\x30\x10LO")  # Study Description
    assert position > 0
    assert send_bytes(association, data[: position + 4] + b"ZZ" + data[position + 6 :], tmp_path) == CANNOT_UNDERSTAND
    assert archive_holds_no_file(archive)


def test_missing_sop_instance_uid_is_refused(association: Association, archive: Daemon, tmp_path: Path) -> None:
    dataset = make_instance("MR")
    del dataset.SOPInstanceUID
    assert send_bytes(association, encoded(dataset), tmp_path) == CANNOT_UNDERSTAND
    assert archive_holds_no_file(archive)
    assert "SOPInstanceUID is missing or empty" in archive.log()


def test_garbage_on_the_port_leaves_the_archive_serving(archive: Daemon) -> None:
    with socket.create_connection(("127.0.0.1", archive.port)) as raw:
        raw.sendall(os.urandom(64 * 1024))
        raw.settimeout(10)
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            raw.recv(1024)
    ae = AE()
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", archive.port, ae_title="APPLIANCE")
    assert assoc.is_established
    assert assoc.send_c_echo().Status == SUCCESS
    assoc.release()
    assert archive.process is not None and archive.process.poll() is None


def test_association_proposing_nothing_supported_stores_nothing(archive: Daemon) -> None:
    """The archive accepts the association with every context rejected (PS3.8 9.3.3.2); a requestor
    left with no context gives up (pynetdicom aborts); nothing is stored, the archive stays up."""
    ae = AE()
    ae.add_requested_context("1.2.826.0.1.3680043.10.1471.99.1")  # no such SOP class
    assoc = ae.associate("127.0.0.1", archive.port, ae_title="APPLIANCE")
    assert not assoc.is_established and assoc.is_aborted
    assert assoc.accepted_contexts == [] and len(assoc.rejected_contexts) == 1
    assert archive_holds_no_file(archive)
    assert archive.process is not None and archive.process.poll() is None


def test_duplicate_with_same_bytes_is_accepted_once(association: Association, archive: Daemon, tmp_path: Path) -> None:
    data = encoded(make_instance("MR"))
    assert send_bytes(association, data, tmp_path) == SUCCESS
    assert send_bytes(association, data, tmp_path) == SUCCESS
    assert instance_count(archive) == 1
    assert "quarantined copies  0" in cli(archive.config_path, "archive", "stats").stdout


def test_duplicate_with_other_bytes_keeps_the_first_and_quarantines_the_second(
    association: Association, archive: Daemon, tmp_path: Path
) -> None:
    dataset = make_instance("MR")
    first = encoded(dataset)
    dataset.StudyDescription = "IRM corrigée"
    second = encoded(dataset)
    assert send_bytes(association, first, tmp_path) == SUCCESS
    assert send_bytes(association, second, tmp_path) == SUCCESS
    statistics = cli(archive.config_path, "archive", "stats").stdout
    assert "instances           1" in statistics
    assert "quarantined copies  1" in statistics
    (stored,) = (archive.config_path.parent / "data" / "archive").rglob("*.dcm")
    assert dcmread(stored).StudyDescription == "MR thorax"
    (kept,) = (archive.config_path.parent / "data" / "quarantine").rglob("*.dcm")
    assert kept.read_bytes()[-100:] == second[-100:]


def study_query() -> Dataset:
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = ""
    query.PatientName = ""
    return query


def test_retrieve_can_be_cancelled(archive: Daemon) -> None:
    """C-CANCEL during a C-GET. The cancel is sent from the first sub-operation's handler, so it is
    on the wire before that sub-operation's response: the archive must see it before the next one."""
    study_uid = generate_uid()
    store = associate(archive.port, MRImageStorage)
    for number in range(1, 6):
        dataset = make_instance("MR", PATIENTS[0], study_uid=study_uid, instance_number=number)
        assert store.send_c_store(dataset).Status == SUCCESS
    store.release()
    received: list[str] = []

    def on_store(event: Any) -> int:
        received.append(event.dataset.SOPInstanceUID)
        if len(received) == 1:
            event.assoc.send_c_cancel(9, query_model=StudyRootQueryRetrieveInformationModelGet)
        return SUCCESS

    ae = AE()
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(MRImageStorage)
    role = build_role(MRImageStorage, scp_role=True)
    assoc = ae.associate("127.0.0.1", archive.port, ae_title="APPLIANCE", ext_neg=[role],
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])  # fmt: skip
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_uid
    statuses = [status for status, _ in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet, msg_id=9)]
    assoc.release()
    final = statuses[-1]
    assert final.Status == CANCEL
    assert len(received) < 5
    assert final.NumberOfRemainingSuboperations == 5 - len(received)


def test_find_answers_are_capped(tmp_path: Path) -> None:
    config = archive_config(tmp_path / "data", 1, dicom={"maximum_find_results": 2})
    daemon = Daemon("appliance.daemons.archive", write_config(tmp_path / "a.yaml", config), tmp_path / "log").start()
    try:
        assoc = associate(daemon.port, MRImageStorage, StudyRootQueryRetrieveInformationModelFind)
        for number in range(4):
            assert assoc.send_c_store(make_instance("MR", PATIENTS[number])).Status == SUCCESS
        statuses = [
            int(status.Status)
            for status, _ in assoc.send_c_find(study_query(), StudyRootQueryRetrieveInformationModelFind)
        ]
        assoc.release()
    finally:
        daemon.stop()
    assert statuses == [PENDING, PENDING, OUT_OF_RESOURCES]


def test_query_in_latin1_matches_names_stored_in_utf8(association: Association) -> None:
    assert association.send_c_store(make_instance("MR", PATIENTS[0])).Status == SUCCESS  # ŒUVRARD^Chloé, UTF-8
    query = study_query()
    query.SpecificCharacterSet = "ISO_IR 100"
    query.PatientName = "oeuvrard^chlo*"
    answers = [
        identifier
        for status, identifier in association.send_c_find(query, StudyRootQueryRetrieveInformationModelFind)
        if status.Status == PENDING
    ]
    assert len(answers) == 1
    assert answers[0].SpecificCharacterSet == "ISO_IR 192"
    assert str(answers[0].PatientName) == "ŒUVRARD^Chloé"


@pytest.mark.parametrize(("status", "given_out"), [("VALI", True), ("PROV", False)])
def test_find_returns_the_ins_of_a_qualified_identity_when_asked(
    association: Association, archive: Daemon, status: str, given_out: bool
) -> None:
    from pydicom.sequence import Sequence
    from sqlalchemy import select
    from worklist_data import add_national_identifier

    from appliance.config import load_config
    from appliance.db import create_index_engine
    from appliance.db.schema import patient

    assert association.send_c_store(make_instance("MR", PATIENTS[0])).Status == SUCCESS
    engine = create_index_engine(load_config(archive.config_path).database_url)
    with engine.connect() as connection:
        patient_pk = int(connection.execute(select(patient.c.id)).scalar_one())
    add_national_identifier(engine, patient_pk, "261017510612345", status)
    engine.dispose()
    query = study_query()
    query.OtherPatientIDsSequence = Sequence()
    (answer,) = [
        identifier
        for status, identifier in association.send_c_find(query, StudyRootQueryRetrieveInformationModelFind)
        if status.Status == PENDING
    ]
    if not given_out:
        assert answer.OtherPatientIDsSequence == []
        return
    (other,) = answer.OtherPatientIDsSequence
    assert (other.PatientID, other.IssuerOfPatientID) == ("261017510612345", "ASIP-SANTE-INS-NIR")


def implicit_bytes_under_explicit_meta(dataset: Dataset) -> bytes:
    """A file whose meta says Explicit VR Little Endian and whose dataset is Implicit VR."""
    explicit = encoded(dataset)
    meta_end = 144 + int.from_bytes(explicit[140:144], "little")
    return explicit[:meta_end] + dsutils.encode(dataset, True, True)


def test_implicit_bytes_on_an_explicit_context_are_refused(
    association: Association, archive: Daemon, tmp_path: Path
) -> None:
    """Issue 15, defect 6: the bytes must follow the negotiated transfer syntax (else DCMTK could
    not read the archived file back): C000 with the reason, nothing stored."""
    data = implicit_bytes_under_explicit_meta(make_instance("MR"))
    assert send_bytes(association, data, tmp_path) == CANNOT_UNDERSTAND
    assert archive_holds_no_file(archive)
    assert "not encoded in Explicit VR Little Endian" in archive.log()


def test_an_object_sent_on_another_sop_class_context_is_refused(archive: Daemon) -> None:
    """Issue 15, defect 7: an MR image on the CT image context gets 0122 (SOP class not supported)."""
    assoc = associate(archive.port, CTImageStorage)
    ct_context = assoc.accepted_contexts[0]
    assoc._get_valid_context = lambda *arguments, **keywords: ct_context  # type: ignore[method-assign]
    status = assoc.send_c_store(make_instance("MR"))
    assoc.release()
    assert status.Status == 0x0122
    assert archive_holds_no_file(archive)
    assert "sent on the presentation context of 1.2.840.10008.5.1.4.1.1.2" in archive.log()
