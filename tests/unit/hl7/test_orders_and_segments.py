"""ORM/OMI to worklist orders, PID to patient identities: field by field."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2]))

from hl7_client import golden

from appliance.hl7 import er7
from appliance.hl7.orders import orders_of, timestamp_of
from appliance.hl7.segments import ContentError, PractisePolicy, identity_of, ipp_of, visit_of
from appliance.worklist.orders import OrderControl


def test_orm_with_zds() -> None:
    (order,) = orders_of(er7.parse(golden("orm_zds_8859-15.hl7")))
    assert order.control is OrderControl.NEW
    assert (order.placer_order_number, order.filler_order_number) == ("PLC0001", "ACC0001")
    assert (order.accession_number, order.requested_procedure_id, order.scheduled_procedure_step_id) == (
        "ACC0001",
        "RP0001",
        "SPS0001",
    )
    assert order.study_instance_uid == "1.2.250.999.1.20250601.1"
    assert order.modality == "MG"
    assert order.procedure.value == "MAMMO" and order.procedure.scheme == "LOCAL"
    assert order.procedure.meaning == "Mammographie bilatérale (contrôle Œdème, 20 €)"
    assert order.scheduled_start == datetime(2025, 6, 1, 9, 30)
    assert order.referring_physician_name == "MARTIN^JEAN"
    assert order.requesting_physician_name == "MARTIN^JEAN"


def test_orm_without_zds_v231_unlabelled() -> None:
    (order,) = orders_of(er7.parse(golden("orm_no_zds_unlabelled.hl7")))
    assert order.study_instance_uid == ""
    assert order.modality == "DX"
    assert order.scheduled_start == datetime(2025, 1, 30, 16, 30)
    assert order.referring_physician_name == "DUPRÉ^ANNE"


def test_omi_with_ipc() -> None:
    (order,) = orders_of(er7.parse(golden("omi_ipc_8859-1.hl7")))
    assert order.accession_number == "ACC0003"
    assert order.requested_procedure_id == "RP0003"
    assert order.study_instance_uid == "1.2.250.999.1.20250603.3"
    assert order.scheduled_procedure_step_id == "SPS0003"
    assert order.modality == "CT"
    assert order.station_name == "SCANNER1"
    assert order.station_ae_title == "CT_SALLE2"
    assert order.scheduled_start == datetime(2025, 6, 3, 10, 30)


def test_unknown_order_control_is_a_content_error() -> None:
    message = er7.parse(golden("orm_zds_8859-15.hl7").replace(b"ORC|NW|", b"ORC|ZZ|"))
    with pytest.raises(ContentError) as raised:
        orders_of(message)
    assert raised.value.location == "ORC^1^1"


def test_pid_identity_keeps_birth_name_without_civility() -> None:
    pid = er7.parse(golden("a31_nia_to_nir.hl7")).segment("PID")
    assert pid is not None
    identity = identity_of(pid, PractisePolicy())
    assert identity.ipp.value == "1900068" and identity.ipp.issuer == "350000121"
    assert identity.dicom_name == "DARK^JEANNE"
    assert identity.given_names == "JEANNE MARIE CECILE"
    assert identity.used_given_name == "MARIE-CECILE"
    assert (identity.sex, identity.birth_date, identity.birth_place) == ("F", "19600530", "88154")
    assert identity.qualified
    assert [found.universal_id for found in identity.other_identifiers] == [
        "1.2.250.1.213.1.4.9",
        "1.2.250.1.213.1.4.8",
    ]


def test_ipp_authority_selects_the_repetition() -> None:
    pid = er7.parse(golden("a31_nia_to_nir.hl7")).segment("PID")
    assert pid is not None
    with pytest.raises(ContentError):
        identity_of(pid, PractisePolicy("OTHER-AUTHORITY"))
    assert identity_of(pid, PractisePolicy("350000121")).ipp.value == "1900068"


def test_timestamps() -> None:
    assert timestamp_of("20250601093000+0100") == datetime(2025, 6, 1, 9, 30)
    assert timestamp_of("202506010930") == datetime(2025, 6, 1, 9, 30)
    assert timestamp_of('""') is None
    assert timestamp_of("2025") is None


def test_a11_gives_its_ipp_and_the_admission_it_cancels() -> None:
    message = er7.parse(golden("a11_cancel_admission_utf8.hl7"))
    pid = message.segment("PID")
    assert pid is not None
    ipp = ipp_of(pid, PractisePolicy("RIS-CAB-X"))
    assert (ipp.value, ipp.issuer) == ("IPP1101", "RIS-CAB-X")
    assert visit_of(message) == "visit V250605001, movement MVT-250605-001 CANCEL"
    assert visit_of(er7.parse(golden("a28_utf8.hl7"))) == ""
