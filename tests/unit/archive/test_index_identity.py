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


def test_the_ins_an_image_carries_is_kept_but_not_given_out_until_qualified(engine: Engine) -> None:
    """P3: the Other Patient IDs Sequence of a received image is read and its INS kept (source
    "dicom"); C-FIND gives it out only once the RIS has qualified the identity (VALI)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from sqlalchemy import update

    from appliance.db.schema import patient_identifier

    dataset = make_instance("MR", PATIENTS[0])
    dataset.Rows = dataset.Columns = 4
    dataset.PixelData = b"\0" * 32
    qualifier, other = Dataset(), Dataset()
    qualifier.UniversalEntityID, qualifier.UniversalEntityIDType = "1.2.250.1.213.1.4.8", "ISO"
    other.PatientID, other.IssuerOfPatientID = "261017510612345", "ASIP-SANTE-INS-NIR"
    other.IssuerOfPatientIDQualifiersSequence = Sequence([qualifier])
    dataset.OtherPatientIDsSequence = Sequence([other])
    Index(engine).add_instance(read_attributes(encoded(dataset)), WrittenFile("ins.dcm", 1, "0" * 64), "T")
    with engine.connect() as connection:
        kept = connection.execute(select(patient_identifier)).one()
    assert (kept.identifier, kept.universal_id, kept.type_code, kept.source) == (
        "261017510612345", "1.2.250.1.213.1.4.8", "INS", "dicom"
    )  # fmt: skip
    asked = Query("STUDY", {"PatientID": "", "OtherPatientIDsSequence": ""})
    assert [row["OtherPatientIDsSequence"] for row in find(engine, asked, 10)] == [[]]
    with engine.begin() as connection:
        connection.execute(
            insert(patient_identity).values(
                patient_pk=kept.patient_pk, identity_status="VALI", updated_at=datetime.now(UTC)
            )
        )
    (row,) = find(engine, asked, 10)
    assert [item["PatientID"] for item in row["OtherPatientIDsSequence"]] == ["261017510612345"]
    with engine.begin() as connection:
        connection.execute(update(patient_identity).values(identity_status="PROV"))
    assert [row["OtherPatientIDsSequence"] for row in find(engine, asked, 10)] == [[]]
