"""Images before their order (P2): the order's scheduling moves them to its patient, audited; what
stays apart is listed with the reason."""

from __future__ import annotations

from datagen import PATIENTS, encoded, make_instance
from pydicom.uid import generate_uid
from sqlalchemy import Engine, select
from worklist_data import add_national_identifier, add_patient, new_order, schedule

from appliance.archive.attributes import read_attributes
from appliance.archive.index import Index
from appliance.archive.reconciliation import (
    AttachOutcome,
    attach_study,
    count_unreconciled,
    unreconciled_studies,
    unreconciled_study,
)
from appliance.archive.storage import WrittenFile
from appliance.config.loader import config_from_document
from appliance.db.schema import identity_change, patient, study

CONFIG = config_from_document({}, "test")


def store_study(engine: Engine, accession_number: str, patient_id: str = "IPP0004") -> str:
    """One image of a new study, for a patient the archive creates from it; its Study Instance UID."""
    dataset = make_instance("MR", PATIENTS[3], study_uid=generate_uid(), accession_number=accession_number)
    dataset.PatientID = patient_id
    dataset.Rows = dataset.Columns = 4
    dataset.PixelData = b"\0" * 32
    written = WrittenFile(f"{dataset.SOPInstanceUID}.dcm", 1, "0" * 64)
    Index(engine).add_instance(read_attributes(encoded(dataset)), written, "MR1")
    return str(dataset.StudyInstanceUID)


def patient_of(engine: Engine, study_instance_uid: str) -> str:
    with engine.connect() as connection:
        return str(
            connection.execute(
                select(patient.c.patient_id)
                .join(study, study.c.patient_pk == patient.c.id)
                .where(study.c.study_instance_uid == study_instance_uid)
            ).scalar_one()
        )


def audit_trail(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(select(identity_change).order_by(identity_change.c.id))
        return [(row.action, row.source_control_id, row.detail) for row in rows]


def test_studies_with_the_order_accession_join_its_patient(engine: Engine) -> None:
    first, second = store_study(engine, "ACC00001"), store_study(engine, "ACC00001")
    other = store_study(engine, "ACC00009")
    result = schedule(engine, CONFIG, new_order(1), add_patient(engine, "IPP-RIS", "DUPONT^Jean"))
    assert result.detail == "2 archived study(ies) joined the order's patient"
    assert [patient_of(engine, uid) for uid in (first, second, other)] == ["IPP-RIS", "IPP-RIS", "IPP0004"]
    trail = audit_trail(engine)
    assert [(action, control) for action, control, _ in trail] == [("study-linked-to-order", "PLACER1")] * 2
    assert f"study {first} moved from patient #1 to #2" in trail[0][2]


def test_the_study_instance_uid_of_the_order_comes_before_its_accession(engine: Engine) -> None:
    by_uid, by_accession = store_study(engine, "OTHER"), store_study(engine, "ACC00001")
    schedule(engine, CONFIG, new_order(1, study_instance_uid=by_uid), add_patient(engine, "IPP-RIS", "DUPONT^Jean"))
    assert (patient_of(engine, by_uid), patient_of(engine, by_accession)) == ("IPP-RIS", "IPP0004")


def test_a_study_of_a_patient_known_from_the_ris_stays_and_is_listed(engine: Engine) -> None:
    known = add_patient(engine, "IPP-KNOWN", "MARTIN^Noël")
    add_national_identifier(engine, known, "180017512345678")  # an identity row: known from the RIS
    kept = store_study(engine, "ACC00001", patient_id="IPP-KNOWN")
    unordered = store_study(engine, "NOORDER")
    result = schedule(engine, CONFIG, new_order(1), add_patient(engine, "IPP-RIS", "DUPONT^Jean"))
    assert result.detail == "" and patient_of(engine, kept) == "IPP-KNOWN"
    listed = {row["study_instance_uid"]: row["reason"] for row in unreconciled_studies(engine)}
    assert listed == {
        kept: "its accession number is ordered for patient IPP-RIS",
        unordered: "no order",
    }


def test_a_study_whose_uid_is_ordered_for_another_patient_is_listed(engine: Engine) -> None:
    known = add_patient(engine, "IPP-KNOWN", "MARTIN^Noël")
    add_national_identifier(engine, known, "180017512345678")
    kept = store_study(engine, "", patient_id="IPP-KNOWN")
    schedule(engine, CONFIG, new_order(1, study_instance_uid=kept), add_patient(engine, "IPP-RIS", "DUPONT^Jean"))
    (row,) = unreconciled_studies(engine)
    assert row["reason"] == "its Study Instance UID is ordered for patient IPP-RIS"


def test_a_study_attached_by_hand_is_no_longer_listed_nor_counted(engine: Engine) -> None:
    unordered, other = store_study(engine, "NOORDER"), store_study(engine, "NOORDER2")
    add_patient(engine, "IPP-RIS", "DUPONT^Jean")
    assert count_unreconciled(engine) == 2 == len(unreconciled_studies(engine))
    waiting = unreconciled_study(engine, unordered)
    assert waiting is not None and (waiting["patient_id"], waiting["reason"]) == ("IPP0004", "no order")
    assert attach_study(engine, unordered, "IPP-RIS", "CABINET", "marie") == AttachOutcome.ATTACHED
    assert [row["study_instance_uid"] for row in unreconciled_studies(engine)] == [other]
    assert count_unreconciled(engine) == 1 and unreconciled_study(engine, unordered) is None
    assert audit_trail(engine)[-1][0] == "study-attached"
