"""The patients domain on a real SQLite index: creation, updates, INS rules, A47, merges, audit."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, func, insert, select

from appliance.db.schema import identity_change, patient, patient_identifier, patient_identity, scheduled_step, study
from appliance.patients.identities import (
    INS_NIA_OID,
    INS_NIR_OID,
    Identifier,
    IdentityPolicy,
    PatientIdentity,
    PatientOutcome,
    Source,
    change_identifier,
    merge_patients,
    record_patient,
)

SOURCE = Source("RIS", "CAB-X", "ADT^A28", "C1")
PRODUCTION = IdentityPolicy(refuse_test_ins=True)
NIR = Identifier("180017512345678", "ASIP-SANTE-INS-NIR", INS_NIR_OID, "INS")
NIA = Identifier("180017512345600", "ASIP-SANTE-INS-NIA", INS_NIA_OID, "INS")
TEST_NIR = Identifier("279035121518989", "ASIP-SANTE-INS-NIR", "1.2.250.1.213.1.4.10", "INS")


def ipp(value: str) -> Identifier:
    return Identifier(value, "RIS-CAB-X", "", "PI")


def person(value: str, *identifiers: Identifier, status: tuple[str, ...] = ("VALI",)) -> PatientIdentity:
    return PatientIdentity(
        ipp=ipp(value),
        other_identifiers=identifiers,
        birth_name="ŒUVRARD",
        first_given_name="Chloé",
        given_names="Chloé Hélène",
        sex="F",
        birth_date="19800115",
        birth_place="75115",
        identity_status=status,
    )


def ins_of(engine: Engine, patient_pk: int) -> list[str]:
    with engine.connect() as connection:
        query = select(patient_identifier.c.identifier).where(
            patient_identifier.c.patient_pk == patient_pk, patient_identifier.c.type_code == "INS"
        )
        return list(connection.scalars(query))


def test_create_then_update_keeps_one_patient_and_audits(engine: Engine) -> None:
    with engine.begin() as connection:
        created = record_patient(connection, person("IPP1", NIR), SOURCE, PRODUCTION)
        updated = record_patient(connection, person("IPP1", NIR), SOURCE, PRODUCTION)
    assert created.outcome is PatientOutcome.CREATED and updated.outcome is PatientOutcome.UPDATED
    assert created.patient_pk == updated.patient_pk
    with engine.connect() as connection:
        row = connection.execute(select(patient)).one()
        identity = connection.execute(select(patient_identity)).one()
        audits = connection.scalar(select(func.count()).select_from(identity_change))
    assert (row.patient_id, row.issuer_of_patient_id, row.patient_name) == ("IPP1", "RIS-CAB-X", "ŒUVRARD^Chloé")
    assert row.patient_name_key == "ŒUVRARD^CHLOE"
    assert (identity.birth_name, identity.birth_place, identity.identity_status) == ("ŒUVRARD", "75115", "VALI")
    assert audits == 2
    assert created.patient_pk is not None and ins_of(engine, created.patient_pk) == [NIR.value]


def test_ins_is_dropped_unless_the_identity_is_qualified(engine: Engine) -> None:
    with engine.begin() as connection:
        result = record_patient(connection, person("IPP2", NIR, status=("PROV",)), SOURCE, PRODUCTION)
    assert result.outcome is PatientOutcome.CREATED
    assert result.patient_pk is not None and ins_of(engine, result.patient_pk) == []


def test_nir_is_preferred_to_nia(engine: Engine) -> None:
    with engine.begin() as connection:
        result = record_patient(connection, person("IPP3", NIA, NIR), SOURCE, PRODUCTION)
    assert result.patient_pk is not None and ins_of(engine, result.patient_pk) == [NIR.value]


def test_test_ins_refused_in_production_accepted_in_development(engine: Engine) -> None:
    with engine.begin() as connection:
        refused = record_patient(connection, person("IPP4", TEST_NIR), SOURCE, PRODUCTION)
        accepted = record_patient(connection, person("IPP4", TEST_NIR), SOURCE, IdentityPolicy(False))
    assert refused.outcome is PatientOutcome.TEST_IDENTIFIER_REFUSED
    assert accepted.outcome is PatientOutcome.CREATED


def test_patient_created_from_images_is_adopted(engine: Engine) -> None:
    moment = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(insert(patient).values(patient_id="IPP5", created_at=moment, updated_at=moment))
        result = record_patient(connection, person("IPP5"), SOURCE, PRODUCTION)
    assert result.outcome is PatientOutcome.UPDATED
    with engine.connect() as connection:
        assert connection.execute(select(patient.c.issuer_of_patient_id)).scalar() == "RIS-CAB-X"


def test_a47_ins_deletion_and_ipp_change(engine: Engine) -> None:
    with engine.begin() as connection:
        created = record_patient(connection, person("IPP6", NIR), SOURCE, PRODUCTION)
        deleted = change_identifier(connection, person("IPP6", status=("PROV",)), NIR, SOURCE, PRODUCTION)
        renamed = change_identifier(connection, person("IPP6-NEW"), ipp("IPP6"), SOURCE, PRODUCTION)
        unknown = change_identifier(connection, person("IPP8"), ipp("NOBODY"), SOURCE, PRODUCTION)
    assert deleted.outcome is PatientOutcome.IDENTIFIER_CHANGED
    assert created.patient_pk is not None and ins_of(engine, created.patient_pk) == []
    assert renamed.outcome is PatientOutcome.IDENTIFIER_CHANGED and renamed.patient_pk == created.patient_pk
    assert unknown.outcome is PatientOutcome.UNKNOWN_PATIENT
    with engine.connect() as connection:
        assert connection.execute(select(patient.c.patient_id)).scalar() == "IPP6-NEW"


def test_a47_to_an_ipp_held_by_another_patient_is_refused(engine: Engine) -> None:
    with engine.begin() as connection:
        record_patient(connection, person("IPP9"), SOURCE, PRODUCTION)
        record_patient(connection, person("IPP10"), SOURCE, PRODUCTION)
        result = change_identifier(connection, person("IPP10"), ipp("IPP9"), SOURCE, PRODUCTION)
    assert result.outcome is PatientOutcome.IDENTIFIER_IN_USE


def add_study(engine: Engine, patient_pk: int, uid: str) -> None:
    moment = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(study).values(patient_pk=patient_pk, study_instance_uid=uid, received_at=moment, updated_at=moment)
        )
        connection.execute(
            insert(scheduled_step).values(
                patient_pk=patient_pk, study_instance_uid=uid, created_at=moment, updated_at=moment
            )
        )


def test_merge_repoints_studies_and_steps(engine: Engine) -> None:
    with engine.begin() as connection:
        surviving = record_patient(connection, person("KEEP"), SOURCE, PRODUCTION)
        absorbed = record_patient(connection, person("GONE"), SOURCE, PRODUCTION)
    assert surviving.patient_pk is not None and absorbed.patient_pk is not None
    add_study(engine, absorbed.patient_pk, "1.2.3.1")
    with engine.begin() as connection:
        merged = merge_patients(connection, person("KEEP"), ipp("GONE"), SOURCE, PRODUCTION)
    assert merged.outcome is PatientOutcome.MERGED
    with engine.connect() as connection:
        assert connection.execute(select(study.c.patient_pk)).scalar() == surviving.patient_pk
        assert connection.execute(select(scheduled_step.c.patient_pk)).scalar() == surviving.patient_pk
        merged_into = connection.execute(
            select(patient_identity.c.merged_into).where(patient_identity.c.patient_pk == absorbed.patient_pk)
        ).scalar()
    assert merged_into == surviving.patient_pk


def test_self_and_circular_merges_are_refused(engine: Engine) -> None:
    with engine.begin() as connection:
        record_patient(connection, person("A"), SOURCE, PRODUCTION)
        record_patient(connection, person("B"), SOURCE, PRODUCTION)
        itself = merge_patients(connection, person("A"), ipp("A"), SOURCE, PRODUCTION)
        first = merge_patients(connection, person("A"), ipp("B"), SOURCE, PRODUCTION)
        circular = merge_patients(connection, person("B"), ipp("A"), SOURCE, PRODUCTION)
    assert itself.outcome is PatientOutcome.SELF_MERGE
    assert first.outcome is PatientOutcome.MERGED
    assert circular.outcome is PatientOutcome.CIRCULAR_MERGE
