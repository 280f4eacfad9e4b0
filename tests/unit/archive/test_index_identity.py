"""Which patient a new study joins: the ordered one, the one holding its ID, the merge survivor."""

from __future__ import annotations

from datetime import UTC, datetime

from datagen import PATIENTS, encoded, make_instance
from sqlalchemy import Engine, insert, select
from worklist_data import add_patient

from appliance.archive.attributes import read_attributes
from appliance.archive.index import Index
from appliance.archive.search import Query, find
from appliance.archive.storage import WrittenFile
from appliance.db.schema import patient_identity, study


def store_study(engine: Engine, patient_id: str, issuer: str = "") -> int:
    dataset = make_instance("MR", PATIENTS[0])
    dataset.PatientID = patient_id
    dataset.IssuerOfPatientID = issuer
    dataset.Rows = dataset.Columns = 4
    dataset.PixelData = b"\0" * 32
    Index(engine).add_instance(
        read_attributes(encoded(dataset)), WrittenFile(f"{dataset.SOPInstanceUID}.dcm", 1, "0" * 64), "T"
    )
    with engine.connect() as connection:
        return int(
            connection.execute(
                select(study.c.patient_pk).where(study.c.study_instance_uid == dataset.StudyInstanceUID)
            ).scalar_one()
        )


def test_an_object_without_issuer_joins_the_one_patient_holding_its_id(engine: Engine) -> None:
    known = add_patient(engine, "IPP7", "ŒUVRARD^Chloé")  # issuer CABINET, as the RIS sent it
    assert store_study(engine, "IPP7") == known
    assert store_study(engine, "IPP7", issuer="OTHER") != known  # another issuer is another patient


def test_new_images_of_a_merged_patient_join_the_survivor(engine: Engine) -> None:
    survivor = add_patient(engine, "IPP1", "DUPONT^Jean")
    absorbed = add_patient(engine, "IPP2", "DUPONT^Jean")
    with engine.begin() as connection:
        connection.execute(
            insert(patient_identity).values(patient_pk=absorbed, merged_into=survivor, updated_at=datetime.now(UTC))
        )
    assert store_study(engine, "IPP2", issuer="CABINET") == survivor
    patients = find(engine, Query("PATIENT", {"PatientID": ""}), 10)
    assert [row["PatientID"] for row in patients] == ["IPP1"]  # the absorbed patient no longer answers
