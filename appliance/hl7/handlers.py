"""Message handlers: decode the segments, make one domain call, map its result to a `Verdict`.

Each handler runs inside the transaction that also records the message as applied; a verdict other
than AA rolls everything back (nothing half-applied).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection

from appliance.config import Config
from appliance.hl7.acks import ErrorCode, Verdict
from appliance.hl7.er7 import Message
from appliance.hl7.orders import orders_of
from appliance.hl7.segments import (
    ContentError,
    PractisePolicy,
    absorbed_identifier,
    identity_of,
    ipp_of,
    merged_identifier,
    required_pid,
    visit_of,
)
from appliance.patients.identities import (
    IdentityPolicy,
    PatientOutcome,
    PatientResult,
    Source,
    cancel_admission,
    change_identifier,
    merge_patients,
    record_order_patient,
    record_patient,
)
from appliance.worklist.orders import Order, OrderOutcome, OrderResult

ApplyOrder = Callable[[Connection, Order, int, Config], OrderResult]
Handler = Callable[[Connection, Message, Source], Verdict]

PATIENT_ERRORS = {
    PatientOutcome.TEST_IDENTIFIER_REFUSED: (ErrorCode.TABLE_VALUE_NOT_FOUND, "PID^1^3"),
    PatientOutcome.UNKNOWN_PATIENT: (ErrorCode.UNKNOWN_KEY_IDENTIFIER, "MRG^1^1"),
    PatientOutcome.IDENTIFIER_IN_USE: (ErrorCode.DUPLICATE_KEY_IDENTIFIER, "PID^1^3"),
    PatientOutcome.SELF_MERGE: (ErrorCode.APPLICATION_INTERNAL_ERROR, "MRG^1^1"),
    PatientOutcome.CIRCULAR_MERGE: (ErrorCode.APPLICATION_INTERNAL_ERROR, "MRG^1^1"),
}
ORDER_APPLIED = {OrderOutcome.SCHEDULED, OrderOutcome.UPDATED, OrderOutcome.CANCELLED, OrderOutcome.DISCONTINUED}


@dataclass(frozen=True)
class Policies:
    practise: PractisePolicy
    identity: IdentityPolicy
    config: Config


def patient_verdict(result: PatientResult) -> Verdict:
    if result.outcome.applied:
        return Verdict.accepted()
    error, location = PATIENT_ERRORS[result.outcome]
    return Verdict.error_in(error, result.detail, location)


def order_verdict(result: OrderResult, sequence: int) -> Verdict:
    if result.outcome in ORDER_APPLIED:
        return Verdict.accepted()
    if result.outcome is OrderOutcome.UNKNOWN_ORDER:
        return Verdict.error_in(ErrorCode.UNKNOWN_KEY_IDENTIFIER, result.detail, f"ORC^{sequence}^2")
    return Verdict.error_in(ErrorCode.APPLICATION_INTERNAL_ERROR, result.detail, f"ORC^{sequence}^1")


def handle_patient(policies: Policies, connection: Connection, message: Message, source: Source) -> Verdict:
    """A28, A31, A01, A04, A05, A08: create or update the patient of PID."""
    identity = identity_of(required_pid(message), policies.practise)
    return patient_verdict(record_patient(connection, identity, source, policies.identity))


def handle_admission_cancel(policies: Policies, connection: Connection, message: Message, source: Source) -> Verdict:
    """A11 (cancel admit / visit notification): recorded in the audit trail; only the IPP of PID is
    read, so the identity stays as it is (names, birth date, INS, status)."""
    ipp = ipp_of(required_pid(message), policies.practise)
    return patient_verdict(cancel_admission(connection, ipp, visit_of(message), source))


def handle_merge(policies: Policies, connection: Connection, message: Message, source: Source) -> Verdict:
    """A40: each PID (surviving) / MRG (absorbed) pair, in order."""
    pids, mrgs = message.all("PID"), message.all("MRG")
    if not pids or len(pids) != len(mrgs):
        raise ContentError("A40 needs one MRG after each PID", "MRG")
    for sequence, (pid, mrg) in enumerate(zip(pids, mrgs, strict=True), start=1):
        identity = identity_of(pid, policies.practise, sequence)
        absorbed = absorbed_identifier(mrg)
        verdict = patient_verdict(merge_patients(connection, identity, absorbed, source, policies.identity))
        if verdict.error is not None:
            return verdict
    return Verdict.accepted()


def handle_identifier_change(policies: Policies, connection: Connection, message: Message, source: Source) -> Verdict:
    """A47: MRG-1 holds the old identifier, PID-3 the new one."""
    identity = identity_of(required_pid(message), policies.practise)
    old = merged_identifier(message)
    return patient_verdict(change_identifier(connection, identity, old, source, policies.identity))


def handle_order(
    policies: Policies, apply_order: ApplyOrder, connection: Connection, message: Message, source: Source
) -> Verdict:
    """ORM^O01, OMI^O23: the order's patient (created or updated), then each order on the worklist."""
    orders = orders_of(message)
    identity = identity_of(required_pid(message), policies.practise)
    recorded = record_order_patient(connection, identity, source, policies.identity)
    if recorded.patient_pk is None or not recorded.outcome.applied:
        return patient_verdict(recorded)
    for sequence, order in enumerate(orders, start=1):
        verdict = order_verdict(apply_order(connection, order, recorded.patient_pk, policies.config), sequence)
        if verdict.error is not None:
            return verdict
    return Verdict.accepted()
