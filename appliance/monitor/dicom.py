"""Findings about the box's network services as a modality or the RIS sees them: the archive and the
worklist answer a C-ECHO (PS3.4 A.4, Verification), the HL7 listener answers a message.

The probes come from the box itself (the loopback address when a service listens on every
address) with the calling AE title `MONITOR_AE_TITLE`, which the archive and the worklist admit
from the loopback address for verification only (`appliance.dicom.peers`). The HL7 probe is an
NMQ^N01 (HL7 v2.5 chapter 14, network management query), which the listener answers NMR^N01 with
AA (`appliance.hl7.management`): the probe proves that the listener reads, parses and answers, and
creates no record (neither an inbox row nor an audit record, and a DEBUG log line only).
"""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime

from pynetdicom import AE

from appliance.config import Config
from appliance.monitor.findings import Finding, Reading, Severity
from appliance.monitor.sources import Context

SOURCE = "dicom"
MONITOR_AE_TITLE = "PACS-MONITOR"
VERIFICATION = "1.2.840.10008.1.1"  # PS3.4 A.4
SUCCESS = 0x0000
TIMEOUT_SECONDS = 10
START_BLOCK, END_BLOCK = b"\x0b", b"\x1c\x0d"  # MLLP framing (HL7 v2 appendix C)
MAXIMUM_ANSWER_BYTES = 65536


def read(context: Context) -> Reading:
    """The archive, the worklist and the HL7 listener as a monitor source."""
    config = context.config
    archive = config.dicom
    worklist = config.worklist
    return Reading(
        [
            echo_finding("archive", "L'archive DICOM", archive.ae_title, archive.bind_address, archive.port),
            echo_finding("worklist", "La liste de travail", worklist.ae_title, worklist.bind_address, worklist.port),
            hl7_finding(config, context.now),
        ]
    )


def probe_host(bind_address: str) -> str:
    """Where to reach a service bound to `bind_address` from the box itself."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(bind_address, bind_address)


def echo_finding(subject: str, name: str, ae_title: str, bind_address: str, port: int) -> Finding:
    """C-ECHO to `ae_title` at the service's address, as a finding about `subject`."""
    if port == 0:
        return Finding(SOURCE, subject, Severity.ABSENT, f"{name} n'a pas de port fixe ici.", "port 0")
    host = probe_host(bind_address)
    started = time.monotonic()
    answer = echo(ae_title, host, port)
    elapsed = time.monotonic() - started
    detail = f"C-ECHO {MONITOR_AE_TITLE} -> {ae_title}@{host}:{port}: {answer} ({elapsed * 1000:.0f} ms)"
    if answer == "success":
        return Finding(SOURCE, subject, Severity.OK, f"{name} répond.", detail)
    if answer.startswith("rejected") or answer.startswith("status"):
        message = f"{name} répond mais refuse la vérification : le prestataire doit regarder sa configuration."
        return Finding(SOURCE, subject, Severity.WARNING, message, detail)
    message = f"{name} ne répond pas : les appareils ne peuvent plus l'utiliser."
    return Finding(SOURCE, subject, Severity.CRITICAL, message, detail)


def echo(ae_title: str, host: str, port: int) -> str:
    """ "success", "rejected", "status 0x...", or why no association was made."""
    ae = AE(ae_title=MONITOR_AE_TITLE)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT_SECONDS
    ae.connection_timeout = TIMEOUT_SECONDS
    ae.add_requested_context(VERIFICATION)
    association = ae.associate(host, port, ae_title=ae_title)
    if association.is_rejected:
        return "rejected (A-ASSOCIATE-RJ)"
    if not association.is_established:
        return "no association (connection refused, aborted or timed out)"
    try:
        status = association.send_c_echo()
    finally:
        association.release()
    if not status or "Status" not in status:
        return "no C-ECHO response"
    code = int(status.Status)
    return "success" if code == SUCCESS else f"status 0x{code:04X}"


def hl7_finding(config: Config, now: datetime) -> Finding:
    """The HL7 listener answers (AA, AE or AR: any acknowledgement of our message) or not."""
    hl7 = config.hl7
    name = "Le lien HL7 avec le RIS"
    if hl7.port == 0:
        return Finding(SOURCE, "hl7", Severity.ABSENT, f"{name} n'a pas de port fixe ici.", "port 0")
    host = probe_host(hl7.bind_address)
    control_id = f"MON{now.astimezone(UTC):%Y%m%d%H%M%S%f}"[:20]
    try:
        answer = hl7_exchange(host, hl7.port, probe_message(config, control_id, now))
    except OSError as error:
        detail = f"MLLP {host}:{hl7.port}: {error}"
        message = f"{name} ne répond pas : les demandes d'examen n'arrivent plus."
        return Finding(SOURCE, "hl7", Severity.CRITICAL, message, detail)
    acknowledgement = acknowledged(answer, control_id)
    detail = f"NMQ^N01 {control_id} to {host}:{hl7.port}: {acknowledgement or 'no MSA for our control ID'}"
    if acknowledgement:
        return Finding(SOURCE, "hl7", Severity.OK, f"{name} répond.", detail)
    message = f"{name} répond de façon incompréhensible : le prestataire doit regarder."
    return Finding(SOURCE, "hl7", Severity.WARNING, message, detail)


def probe_message(config: Config, control_id: str, now: datetime) -> bytes:
    """An NMQ^N01 from the monitor to the listener (MSH and NCK, system date and time)."""
    stamp = f"{now.astimezone(UTC):%Y%m%d%H%M%S}"
    hl7 = config.hl7
    segments = [
        f"MSH|^~\\&|{MONITOR_AE_TITLE}|{hl7.facility}|{hl7.application}|{hl7.facility}|{stamp}||NMQ^N01^NMQ_N01|"
        f"{control_id}|P|2.5",
        f"NCK|{stamp}",
    ]
    return "\r".join(segments).encode("ascii") + b"\r"


def hl7_exchange(host: str, port: int, message: bytes) -> bytes:
    """Send one MLLP frame and read the answer frame (raises OSError, TimeoutError included)."""
    with socket.create_connection((host, port), timeout=TIMEOUT_SECONDS) as connection:
        connection.sendall(START_BLOCK + message + END_BLOCK)
        received = b""
        while END_BLOCK not in received and len(received) < MAXIMUM_ANSWER_BYTES:
            chunk = connection.recv(4096)
            if not chunk:
                break
            received += chunk
    return received.partition(START_BLOCK)[2].partition(END_BLOCK)[0]


def acknowledged(answer: bytes, control_id: str) -> str:
    """ "MSA AA" (or whatever MSA-1 says) when `answer` acknowledges `control_id` (MSA-2), else ''."""
    for segment in answer.decode("latin-1").replace("\n", "\r").split("\r"):
        fields = segment.split("|")
        if fields[0] == "MSA" and len(fields) > 2 and fields[2] == control_id:
            return f"MSA {fields[1]}"
    return ""
