"""Each right is needed for its service (A6): a known peer without it is refused with 0124H (Refused:
Not Authorized, PS3.7 C.5) and nothing happens; with it, the service answers."""

from __future__ import annotations

from pathlib import Path

from datagen import PATIENTS, make_instance
from dicom_wire import rejection
from pydicom.dataset import Dataset
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ComputedRadiographyImageStorage,
    ModalityPerformedProcedureStep,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)
from servers import Daemon, associate, wait_for

NOT_AUTHORIZED = 0x0124
SUCCESS = 0x0000
PENDING = 0xFF00


def study_query(study_uid: str = "") -> Dataset:
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_uid
    return query


def stored_study(archive: Daemon) -> str:
    """One CR image stored by a peer with the store right; its Study Instance UID."""
    image = make_instance("CR", PATIENTS[2])
    assoc = associate(archive.port, ComputedRadiographyImageStorage, ae_title="STORESCU")
    assert assoc.send_c_store(image).Status == SUCCESS
    assoc.release()
    return str(image.StudyInstanceUID)


def statuses(responses: object) -> list[int]:
    return [int(status.Status) for status, _identifier in responses if status]  # type: ignore[attr-defined]


def test_store_needs_the_store_right(archive: Daemon) -> None:
    image = make_instance("CR", PATIENTS[2])
    assoc = associate(archive.port, ComputedRadiographyImageStorage, ae_title="QUERYONLY")
    assert assoc.send_c_store(image).Status == NOT_AUTHORIZED
    assoc.release()
    finder = associate(archive.port, StudyRootQueryRetrieveInformationModelFind, ae_title="FINDSCU")
    assert statuses(finder.send_c_find(study_query(), StudyRootQueryRetrieveInformationModelFind)) == [SUCCESS]
    finder.release()
    assert "C-STORE from QUERYONLY refused: no store right" in archive.log()


def test_find_needs_the_query_right(archive: Daemon) -> None:
    stored_study(archive)
    storer = associate(archive.port, StudyRootQueryRetrieveInformationModelFind, ae_title="STORESCP")
    assert statuses(storer.send_c_find(study_query(), StudyRootQueryRetrieveInformationModelFind)) == [NOT_AUTHORIZED]
    storer.release()
    finder = associate(archive.port, StudyRootQueryRetrieveInformationModelFind, ae_title="QUERYONLY")
    assert statuses(finder.send_c_find(study_query(), StudyRootQueryRetrieveInformationModelFind)) == [
        PENDING,
        SUCCESS,
    ]
    finder.release()


def test_get_and_move_need_the_retrieve_right(archive: Daemon) -> None:
    study_uid = stored_study(archive)
    getter = associate(archive.port, StudyRootQueryRetrieveInformationModelGet, ae_title="QUERYONLY")
    get = statuses(getter.send_c_get(study_query(study_uid), StudyRootQueryRetrieveInformationModelGet))
    getter.release()
    mover = associate(archive.port, StudyRootQueryRetrieveInformationModelMove, ae_title="QUERYONLY")
    move = statuses(mover.send_c_move(study_query(study_uid), "STORESCP", StudyRootQueryRetrieveInformationModelMove))
    mover.release()
    assert get == [NOT_AUTHORIZED] and move == [NOT_AUTHORIZED]
    log = archive.log()
    assert "C-GET from QUERYONLY refused: no retrieve right" in log
    assert "C-MOVE from QUERYONLY refused: no retrieve right" in log
    assert "Unknown Move Destination" not in log  # STORESCP is configured: only the right was lacking


def test_performed_procedure_steps_need_the_worklist_right(archive: Daemon) -> None:
    step = Dataset()
    step.PerformedProcedureStepStatus = "IN PROGRESS"
    assoc = associate(archive.port, ModalityPerformedProcedureStep, ae_title="QUERYONLY")
    status, _ = assoc.send_n_create(step, ModalityPerformedProcedureStep, "1.2.826.0.1.3680043.10.1471.5.1")
    assoc.release()
    assert status.Status == NOT_AUTHORIZED
    assert "MPPS N-CREATE from QUERYONLY refused: no worklist right" in archive.log()


def test_unknown_calling_ae_is_rejected_at_association(archive: Daemon, tmp_path: Path) -> None:
    assert rejection(archive.port, "STRANGER", StudyRootQueryRetrieveInformationModelFind) == (1, 1, 3)
    line = "association from STRANGER (127.0.0.1) rejected: AE title STRANGER is not a configured peer"
    wait_for(lambda: line in archive.log(), "the rejection's log line (written once the connection is closed)", 10)


def test_retrieve_without_its_unique_key_is_refused_with_a900(archive: Daemon) -> None:
    """A C-GET or C-MOVE at STUDY level without a Study Instance UID: A900 (identifier does not match
    SOP class, PS3.4 C.4.2.1.5 / C.4.3.1.4), and nothing is sent anywhere."""
    stored_study(archive)
    getter = associate(archive.port, StudyRootQueryRetrieveInformationModelGet, ae_title="GETSCU")
    get = statuses(getter.send_c_get(study_query(""), StudyRootQueryRetrieveInformationModelGet))
    getter.release()
    mover = associate(archive.port, StudyRootQueryRetrieveInformationModelMove, ae_title="MOVESCU")
    move = statuses(mover.send_c_move(study_query(""), "STORESCP", StudyRootQueryRetrieveInformationModelMove))
    mover.release()
    assert get == [0xA900] and move == [0xA900]
    assert "StudyInstanceUID: needed to retrieve at the STUDY level" in archive.log()
    assert "Unknown Move Destination" not in archive.log()
