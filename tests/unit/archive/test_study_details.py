"""The study page's content, read from a real SQLite index: patient, INS and its status, series with
sizes and transfer syntaxes, senders, identity history (with merges) and the linked order."""

from __future__ import annotations

from datetime import date

from datagen import PATIENTS, encoded, make_instance
from pydicom.uid import CTImageStorage, generate_uid
from sqlalchemy import Engine, update
from worklist_data import add_national_identifier, new_order, schedule

from appliance.archive.attributes import read_attributes
from appliance.archive.index import Index
from appliance.archive.reconciliation import attach_study
from appliance.archive.storage import WrittenFile
from appliance.archive.study_details import study_details
from appliance.config.loader import config_from_document
from appliance.db.schema import instance
from appliance.patients.identities import Identifier, IdentityPolicy, PatientIdentity, Source, merge_patients


def add(index: Index, study_uid: str, series_uid: str, number: int, calling: str, modality: str = "CT") -> None:
    dataset = make_instance(modality, PATIENTS[0], study_uid, series_uid, number, accession_number="ACC1")
    dataset.Rows = dataset.Columns = 8
    dataset.PixelData = b"\0" * 128
    dataset.SeriesNumber = 1 if modality == "CT" else 2
    index.add_instance(
        read_attributes(encoded(dataset)), WrittenFile(f"{series_uid}/{number}", 1000, "0" * 64), calling
    )


def test_an_unknown_study_has_no_details(engine: Engine) -> None:
    assert study_details(engine, "1.2.3") is None


def test_series_sizes_syntaxes_senders_and_sop_classes(engine: Engine) -> None:
    index = Index(engine)
    study_uid, ct_series, mr_series = generate_uid(), generate_uid(), generate_uid()
    for number in (1, 2, 3):
        add(index, study_uid, ct_series, number, "CT_SALLE1")
    add(index, study_uid, mr_series, 1, "PACS_OLD", modality="MR")
    with engine.begin() as connection:  # one CT image compressed by the archive since
        connection.execute(
            update(instance)
            .where(instance.c.instance_number == 3)
            .values(transfer_syntax_uid="1.2.840.10008.1.2.4.80", size_bytes=400)
        )
    details = study_details(engine, study_uid)
    assert details is not None
    ct, mr = details.series
    assert (ct.number, ct.modality, ct.instances, ct.size_bytes, ct.body_part) == (1, "CT", 3, 2400, "CHEST")
    assert [(syntax.name, syntax.compressed, syntax.instances) for syntax in ct.transfer_syntaxes] == [
        ("Explicit VR Little Endian", False, 2),
        ("JPEG-LS Lossless Image Compression", True, 1),
    ]
    assert (mr.number, mr.modality, mr.instances) == (2, "MR", 1)
    assert (details.instances, details.size_bytes) == (4, 3400)
    assert [(sender.ae_title, sender.instances) for sender in details.senders] == [("CT_SALLE1", 3), ("PACS_OLD", 1)]
    assert details.senders[0].first_received <= details.senders[0].last_received
    assert dict(details.sop_classes)[CTImageStorage] == 3 and len(details.sop_classes) == 2
    assert (details.patient.patient_id, details.patient.issuer_of_patient_id) == ("IPP0001", "CABINET")
    assert details.patient.display_name == "ŒUVRARD Chloé" and details.patient.identifier_cx == "IPP0001^^^CABINET"
    assert details.patient.birth_date == date(1961, 4, 12) and details.patient.identity_status == ()
    assert details.order is None and details.history == ()
    assert details.referring_physician_display_name == "GÉRARD Anne"


def test_ins_is_shown_with_whether_it_may_be_given_out(engine: Engine) -> None:
    index = Index(engine)
    study_uid = generate_uid()
    add(index, study_uid, generate_uid(), 1, "CT_SALLE1")
    details = study_details(engine, study_uid)
    assert details is not None
    add_national_identifier(engine, details.patient.pk, "260058815400233", status="PROV")
    provisional = study_details(engine, study_uid)
    assert provisional is not None and provisional.patient.identity_status == ("PROV",)
    (ins,) = provisional.patient.national_identifiers
    assert (ins.value, ins.kind, ins.given_out) == ("260058815400233", "INS-NIR", False)


def test_the_order_and_the_identity_history_with_merges_and_attachments(engine: Engine) -> None:
    config = config_from_document({}, "test")
    index = Index(engine)
    imaged_first = generate_uid()
    add(index, imaged_first, generate_uid(), 1, "CT_SALLE1")  # creates IPP0001 from the images
    survivor = PatientIdentity(Identifier("IPP9", "CABINET", "", "PI"), birth_name="CŒUR", first_given_name="Marie")
    with engine.begin() as connection:
        merged = merge_patients(
            connection, survivor, Identifier("IPP0001", "CABINET", "", "PI"), Source("RIS", "", "ADT^A40", "M9"),
            IdentityPolicy(False),
        )  # fmt: skip
    assert merged.patient_pk is not None
    study_uid = generate_uid()
    schedule(engine, config, new_order(4, station="CT_SALLE1", study_instance_uid=study_uid), merged.patient_pk)
    add(index, study_uid, generate_uid(), 1, "CT_SALLE1")
    assert attach_study(engine, study_uid, "IPP9", "CABINET", "marie.secretaire").value == "already-attached"
    details = study_details(engine, study_uid)
    assert details is not None
    assert details.patient.patient_id == "IPP9" and details.patient.display_name == "CŒUR Marie"
    order = details.order
    assert order is not None and order.same_patient
    assert (order.placer_order_number, order.status, order.station_ae_title, order.modality) == (
        "PLACER4",
        "SCHEDULED",
        "CT_SALLE1",
        "CT",
    )
    assert order.requested_procedure_description == "Scanner thoracique" and order.scheduled_time == "13:30"
    actions = [(event.action, event.source_event) for event in details.history]
    assert ("merged", "ADT^A40") in actions and ("merged-away", "ADT^A40") in actions  # the absorbed one's too
    assert ("created", "ADT^A40") in actions
    assert study_details(engine, imaged_first).patient.patient_id == "IPP9"  # type: ignore[union-attr]
