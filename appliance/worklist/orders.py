"""Orders as the RIS sends them (ORM^O01, OMI^O23), decoded by the HL7 edge into `Order` values,
and what applying one to the worklist answers (`OrderResult`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class OrderControl(enum.Enum):
    """ORC-1 (HL7 table 0119) values the worklist acts on."""

    NEW = "NW"  # new order: schedule a step
    CHANGE = "XO"  # change order: update the step
    CANCEL = "CA"  # cancel request: the step is withdrawn before it started
    DISCONTINUE = "DC"  # discontinue: stop an order in progress
    STATUS = "SC"  # status changed (ORC-5 gives the new status)


@dataclass(frozen=True)
class CodedEntry:
    """An HL7 CE/CWE code as DICOM wants it: value, coding scheme, meaning."""

    value: str = ""
    scheme: str = ""
    meaning: str = ""


@dataclass(frozen=True)
class Order:
    """One order's content, already decoded to Unicode and DICOM conventions (PN as `FAMILY^GIVEN`).

    Empty strings mean "not sent". The patient is resolved beforehand (`patient_pk`).
    """

    control: OrderControl
    placer_order_number: str
    filler_order_number: str = ""
    accession_number: str = ""
    requested_procedure_id: str = ""
    study_instance_uid: str = ""  # generated when the RIS sends none
    scheduled_procedure_step_id: str = ""
    procedure: CodedEntry = field(default_factory=CodedEntry)
    procedure_description: str = ""
    step_description: str = ""
    modality: str = ""
    station_ae_title: str = ""  # taken from the configured mapping when empty
    station_name: str = ""  # room or device, used by the mapping
    scheduled_start: datetime | None = None
    performing_physician_name: str = ""
    referring_physician_name: str = ""
    requesting_physician_name: str = ""
    priority: str = ""
    reason: str = ""
    order_status: str = ""  # ORC-5, with control SC


class OrderOutcome(enum.Enum):
    SCHEDULED = "scheduled"
    UPDATED = "updated"
    CANCELLED = "cancelled"
    DISCONTINUED = "discontinued"
    UNKNOWN_ORDER = "unknown-order"  # change/cancel of an order we never received: AE
    REFUSED = "refused"  # e.g. cancelling a step already completed: AE with the reason


@dataclass(frozen=True)
class OrderResult:
    outcome: OrderOutcome
    detail: str = ""
    study_instance_uid: str = ""
