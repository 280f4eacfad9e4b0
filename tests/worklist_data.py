"""Scheduled steps for worklist tests, created through the worklist domain (as the HL7 side does)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import Engine, insert

from appliance import practice_time
from appliance.config import Config
from appliance.db.schema import patient, patient_identifier, patient_identity
from appliance.patients.identities import Identifier, IdentityPolicy, PatientIdentity, Source, record_patient
from appliance.patients.names import person_name_key
from appliance.worklist.orders import CodedEntry, Order, OrderControl
from appliance.worklist.scheduling import apply_order


def add_patient(engine: Engine, patient_id: str, name: str, birth_date: str = "19610412", sex: str = "F") -> int:
    moment = datetime.now(UTC)
    values: dict[str, Any] = {
        "patient_id": patient_id,
        "issuer_of_patient_id": "CABINET",
        "patient_name": name,
        "patient_name_key": person_name_key(name),
        "patient_birth_date": birth_date,
        "patient_sex": sex,
        "created_at": moment,
        "updated_at": moment,
    }
    with engine.begin() as connection:
        key = connection.execute(insert(patient).values(**values)).inserted_primary_key
    assert key is not None
    return int(key[0])


def add_ris_patient(engine: Engine, patient_id: str, birth: tuple[str, str], used: tuple[str, str] = ("", "")) -> int:
    """A patient as the RIS's patient feed creates it (A28): birth name and first given name, used
    name and used given name (PID-5 repetitions L and D)."""
    identity = PatientIdentity(
        ipp=Identifier(patient_id, "CABINET", "", "PI"),
        birth_name=birth[0],
        first_given_name=birth[1],
        used_name=used[0],
        used_given_name=used[1],
        sex="F",
        birth_date="19600530",
    )
    with engine.begin() as connection:
        result = record_patient(connection, identity, Source("RIS", "CABINET", "ADT^A28", "T1"), IdentityPolicy(False))
    assert result.patient_pk is not None
    return result.patient_pk


def add_national_identifier(engine: Engine, patient_pk: int, ins: str, status: str = "VALI") -> None:
    """An INS-NIR for a patient whose identity has `status` (the HL7 side keeps it only with VALI)."""
    moment = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(patient_identity).values(patient_pk=patient_pk, identity_status=status, updated_at=moment)
        )
        connection.execute(
            insert(patient_identifier).values(
                patient_pk=patient_pk, identifier=ins, namespace="ASIP-SANTE-INS-NIR",
                universal_id="1.2.250.1.213.1.4.8", type_code="INS", created_at=moment,
            )
        )  # fmt: skip


def new_order(number: int, modality: str = "CT", station: str = "", day: date | None = None, **changes: Any) -> Order:
    start = datetime.combine(day or practice_time.today(), time(9 + number % 8, 30))
    values: dict[str, Any] = {
        "control": OrderControl.NEW,
        "placer_order_number": f"PLACER{number}",
        "filler_order_number": f"FILLER{number}",
        "accession_number": f"ACC{number:05d}",
        "procedure": CodedEntry("ZBQK002", "CCAM", "Radiographie du thorax"),
        "procedure_description": "Scanner thoracique",
        "modality": modality,
        "station_ae_title": station,
        "station_name": "SALLE1",
        "scheduled_start": start,
        "referring_physician_name": "GÉRARD^Anne",
    }
    values.update(changes)
    return Order(**values)


def schedule(engine: Engine, config: Config, order: Order, patient_pk: int) -> Any:
    with engine.begin() as connection:
        return apply_order(connection, order, patient_pk, config)
