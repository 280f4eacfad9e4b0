"""From the bytes of a frame to the bytes of its answer: read, check, route on MSH-9, store in the
inbox, apply in one transaction, acknowledge. Every message gets an answer and one log line (type,
control ID, peer, answer) and never any patient data."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from appliance.hl7 import inbox, management
from appliance.hl7.acks import ACCEPT, REJECT, ErrorCode, RequestHeader, Verdict, acknowledgement
from appliance.hl7.audit import Hl7Audit
from appliance.hl7.er7 import Message, MessageError, parse
from appliance.hl7.handlers import (
    ApplyOrder,
    Handler,
    Policies,
    handle_admission_cancel,
    handle_identifier_change,
    handle_merge,
    handle_order,
    handle_patient,
)
from appliance.hl7.refusals import REFUSALS
from appliance.hl7.segments import ContentError
from appliance.patients.identities import Source

LOGGER = logging.getLogger(__name__)

SUPPORTED_VERSIONS = {"2.3", "2.3.1", "2.4", "2.5", "2.5.1"}
PROCESSING_IDS = {"P", "D", "T", ""}  # HL7 table 0103
# IHE PAM (ITI-30, ITI-31) events that create or update the patient; the appliance holds no visits.
PATIENT_EVENTS = ["A01", "A04", "A05", "A08", "A28", "A31"]
Query = Callable[[Message, str], bytes]  # (message, peer) -> answer
CONTROL_ID_LENGTH = 64  # hl7_inbox.control_id
NETWORK_ANSWER = "network management answer"
UNAVAILABLE_TEXT = (
    "index indisponible (disque plein ou base verrouillée) : renvoyer plus tard / "
    "index unavailable (disk full or database locked): send again later"
)


class Refused(Exception):
    """A handler's verdict other than AA: raised to roll the transaction back."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.text)
        self.verdict = verdict


def handler_table(policies: Policies, apply_order: ApplyOrder) -> dict[tuple[str, str], Handler]:
    """MSH-9.1 and MSH-9.2 to the handler of the message, dependencies bound here."""
    table: dict[tuple[str, str], Handler] = {
        ("ADT", event): partial(handle_patient, policies) for event in PATIENT_EVENTS
    }
    table[("ADT", "A11")] = partial(handle_admission_cancel, policies)
    table[("ADT", "A40")] = partial(handle_merge, policies)
    table[("ADT", "A47")] = partial(handle_identifier_change, policies)
    table[("ORM", "O01")] = partial(handle_order, policies, apply_order)
    table[("OMI", "O23")] = partial(handle_order, policies, apply_order)
    return table


@dataclass(frozen=True)
class Identity:
    """Our MSH-3/MSH-4 when the request does not name us; the sending facilities we accept."""

    application: str
    facility: str
    accepted_facilities: frozenset[str]


class Receiver:
    """Turns each received frame into its acknowledgement; applies one message at a time."""

    def __init__(
        self,
        engine: Engine,
        handlers: Mapping[tuple[str, str], Handler],
        identity: Identity,
        queries: Mapping[tuple[str, str], Query] | None = None,
    ) -> None:
        self.engine = engine
        self.handlers = handlers
        self.queries = queries or {}
        self.identity = identity
        self.lock = threading.Lock()
        self.audit: Hl7Audit | None = None  # bound with the handlers (`configure` in the daemon)

    def receive(self, data: bytes, peer: str) -> bytes:
        """The answer to one frame (never raises): AR for what cannot be read or routed, or when the
        index cannot record anything now (the RIS sends it again later)."""
        try:
            return self.answered(data, peer)
        except Exception:  # outermost: a frame always gets an answer
            LOGGER.exception("frame from %s (%d bytes): internal error; answered AR", peer, len(data))
            return self.answer(
                RequestHeader(), Verdict.rejected(ErrorCode.APPLICATION_INTERNAL_ERROR, "internal error")
            )

    def answered(self, data: bytes, peer: str) -> bytes:
        try:
            message = parse(data)
        except MessageError as error:
            answer = self.answer(fallback_header(data), Verdict.rejected(ErrorCode.SEGMENT_SEQUENCE_ERROR, str(error)))
            REFUSALS.warning(LOGGER, "unreadable frame from %s (%d bytes): %s; answered AR", peer, len(data), error)
            return answer
        header = RequestHeader.of(message)
        try:
            answer, code = self.route(message, header, data, peer)
        except OperationalError as error:  # the index cannot grow or answer now: the RIS resends later
            verdict = unavailable_verdict(error)
            message_label = label(message, peer)
            REFUSALS.log(LOGGER, logging.ERROR, "%s: the index cannot record it (%s); answered AR", message_label,
                         database_problem(error))  # fmt: skip
            return self.answer(header, verdict)
        except Exception:  # outermost for a message that could be read: it gets an answer
            LOGGER.exception("%s: internal error", label(message, peer))
            verdict = Verdict.error_in(ErrorCode.APPLICATION_INTERNAL_ERROR, "internal error")
            answer, code = self.answer(header, verdict), verdict.code
        if code != REJECT:
            LOGGER.log(logging.DEBUG if code == NETWORK_ANSWER else logging.INFO, "%s: %s", label(message, peer), code)
        return answer

    def oversize_answer(self) -> bytes:
        return self.answer(RequestHeader(), Verdict.rejected(ErrorCode.SEGMENT_SEQUENCE_ERROR, "message too large"))

    def route(self, message: Message, header: RequestHeader, data: bytes, peer: str = "") -> tuple[bytes, str]:
        rejected = self.check(message)
        if rejected is not None:
            REFUSALS.warning(LOGGER, "%s: %s; answered %s", label(message, peer), rejected.text, rejected.code)
            return self.answer(header, rejected), rejected.code
        key = (message.message_code, message.trigger_event)
        if key == management.QUERY:
            return management.network_answer(message, self.identity.application, self.identity.facility), NETWORK_ANSWER
        if key in self.queries:
            return self.queries[key](message, peer), "query"
        with self.lock:
            return self.store_and_apply(message, header, data, peer)

    def check(self, message: Message) -> Verdict | None:
        """AR for what we do not support: version, processing ID, sender, message type and event. Any
        sender may ask whether the listener is up (NMQ^N01: it names no patient)."""
        header, key = message.header, (message.message_code, message.trigger_event)
        if message.version not in SUPPORTED_VERSIONS:
            return Verdict.rejected(ErrorCode.UNSUPPORTED_VERSION_ID, f"version {message.version!r} not supported")
        if header.get(11) not in PROCESSING_IDS:
            return Verdict.rejected(ErrorCode.UNSUPPORTED_PROCESSING_ID, "processing ID not supported")
        foreign = header.get(4) not in self.identity.accepted_facilities and key != management.QUERY
        if self.identity.accepted_facilities and foreign:
            return Verdict.rejected(ErrorCode.APPLICATION_INTERNAL_ERROR, "sending facility not accepted")
        if not message.control_id:
            return Verdict.rejected(ErrorCode.REQUIRED_FIELD_MISSING, "MSH-10 (message control ID) is empty")
        if len(message.control_id) > CONTROL_ID_LENGTH:
            return Verdict.rejected(ErrorCode.DATA_TYPE_ERROR, f"MSH-10 is longer than {CONTROL_ID_LENGTH} characters")
        supported = {*self.handlers, *self.queries, management.QUERY}
        if key in supported:
            return None
        known = {code for code, _event in supported}
        if message.message_code in known:
            return Verdict.rejected(ErrorCode.UNSUPPORTED_EVENT_CODE, f"event {message.trigger_event!r} not supported")
        return Verdict.rejected(ErrorCode.UNSUPPORTED_MESSAGE_TYPE, f"message {message.message_code!r} not supported")

    def store_and_apply(
        self, message: Message, header: RequestHeader, data: bytes, peer: str = ""
    ) -> tuple[bytes, str]:
        """Store, apply and record the ACK in one commit; a refused message is stored with its AE.
        Then the audit record (not for a duplicate)."""
        sender = f"{message.header.raw(3)}|{message.header.raw(4)}"[:200]
        handler = self.handlers[(message.message_code, message.trigger_event)]
        try:
            with self.engine.begin() as connection:
                existing = inbox.find(connection, sender, message.control_id)
                if existing is not None and existing.status != inbox.RECEIVED and existing.acknowledgement:
                    return existing.acknowledgement, "duplicate, same answer"
                entry_id = self.entry_of(connection, existing, sender, message, data)
                verdict = handler(connection, message, source_of(message))
                if verdict.code != ACCEPT:
                    raise Refused(verdict)
                answer = self.answer(header, verdict)
                inbox.finish(connection, entry_id, inbox.APPLIED, answer, "")
            self.audited(message, peer, verdict)
            return answer, verdict.code
        except Refused as refused:
            verdict = refused.verdict
        except ContentError as error:
            verdict = Verdict.error_in(error.error, error.text, error.location)
        answer = self.answer(header, verdict)
        with self.engine.begin() as connection:
            existing = inbox.find(connection, sender, message.control_id)
            entry_id = self.entry_of(connection, existing, sender, message, data)
            inbox.finish(connection, entry_id, inbox.REFUSED, answer, verdict.text)
        self.audited(message, peer, verdict)
        return answer, verdict.code

    def audited(self, message: Message, peer: str, verdict: Verdict) -> None:
        if self.audit is not None:
            self.audit.applied(message, peer, verdict.code == ACCEPT, verdict.text)

    def entry_of(
        self, connection: Connection, existing: inbox.InboxEntry | None, sender: str, message: Message, data: bytes
    ) -> int:
        if existing is not None:
            return existing.id
        return inbox.store(connection, sender, message.control_id, type_of(message), data)

    def apply_stored(self, entry_id: int, message: Message) -> str:
        """Apply a message stored as received (by an earlier version, or a crash): its effects and ACK."""
        handler = self.handlers[(message.message_code, message.trigger_event)]
        header = RequestHeader.of(message)
        try:
            with self.engine.begin() as connection:
                verdict = handler(connection, message, source_of(message))
                if verdict.code != ACCEPT:
                    raise Refused(verdict)
                inbox.finish(connection, entry_id, inbox.APPLIED, self.answer(header, verdict), "")
            return verdict.code
        except Refused as refused:
            verdict = refused.verdict
        except ContentError as error:
            verdict = Verdict.error_in(error.error, error.text, error.location)
        with self.engine.begin() as connection:
            inbox.finish(connection, entry_id, inbox.REFUSED, self.answer(header, verdict), verdict.text)
        return verdict.code

    def recover(self) -> int:
        """Apply the messages stored but not applied before the last stop; return how many."""
        pending = inbox.unapplied(self.engine)
        for entry in pending:
            try:
                message = parse(entry.message)
                with self.lock:
                    code = self.apply_stored(entry.id, message)
            except Exception:  # one bad stored message must not stop the others
                LOGGER.exception("inbox message %d could not be applied at start", entry.id)
                self.mark_failed(entry.id)
                continue
            LOGGER.info("inbox message %d applied at start: %s", entry.id, code)
        return len(pending)

    def mark_failed(self, entry_id: int) -> None:
        verdict = Verdict.error_in(ErrorCode.APPLICATION_INTERNAL_ERROR, "internal error")
        with self.engine.begin() as connection:
            inbox.finish(connection, entry_id, inbox.FAILED, self.answer(RequestHeader(), verdict), verdict.text)

    def answer(self, header: RequestHeader, verdict: Verdict) -> bytes:
        return acknowledgement(header, verdict, self.identity.application, self.identity.facility)


def label(message: Message, peer: str) -> str:
    """How a log line names a message: MSH-9, MSH-10 (both cut short) and the peer; no patient data."""
    return f"{message.header.raw(9)[:40]} {message.control_id[:64]!r} from {peer}"


def unavailable_verdict(error: OperationalError) -> Verdict:
    """AR (HL7 2.5, 2.9.2: rejected for a reason unrelated to the content; the sender may send it
    again): 206 when the database is locked, 207 when it is full or cannot be reached."""
    locked = "locked" in str(error.orig).lower()
    code = ErrorCode.APPLICATION_RECORD_LOCKED if locked else ErrorCode.APPLICATION_INTERNAL_ERROR
    return Verdict.rejected(code, UNAVAILABLE_TEXT)


def database_problem(error: OperationalError) -> str:
    """The database's own first line (never the statement or its parameters: they hold patient data)."""
    first_line = (str(error.orig).strip().splitlines() or [""])[0]
    return f"{type(error.orig).__name__}: {first_line[:200]}"


def type_of(message: Message) -> str:
    return message.header.raw(9)[:32]


def source_of(message: Message) -> Source:
    header = message.header
    return Source(
        application=header.get(3),
        facility=header.get(4),
        event=f"{message.message_code}^{message.trigger_event}",
        control_id=message.control_id,
    )


def fallback_header(data: bytes) -> RequestHeader:
    """What an AR can copy from a message that could not be read (control ID and version if visible);
    defaults when its first line is not even an MSH with a field separator (`MSH` alone, `MSH1…`)."""
    start = data.find(b"MSH")
    if start < 0:
        return RequestHeader()
    first_line = re.split(rb"[\r\n]", data[start:], maxsplit=1)[0].decode("ascii", "replace")
    separator = first_line[3:4]
    if not separator or separator.isalnum() or separator.isspace():
        return RequestHeader()
    fields = first_line.split(separator)
    control_id = fields[9] if len(fields) > 9 else ""
    version = fields[11].split("^")[0] if len(fields) > 11 else ""
    return RequestHeader(control_id=control_id[:64], version=version if version in SUPPORTED_VERSIONS else "2.5")
