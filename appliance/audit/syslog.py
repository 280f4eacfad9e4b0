"""A copy of every audit record to an audit repository (IHE ATNA ITI-20): RFC 5424 syslog messages
holding the AuditMessage XML, over UDP (RFC 5426, one datagram per message), TCP (RFC 6587 octet
counting) or TLS (RFC 5425: octet counting, server certificate checked against the system's CAs).

The trail is the spool: the forwarder keeps its place (`audit_cursor`, row "syslog") in the audit
file and sends what follows it, so a repository that is down delays the copies (retried with a
growing pause) and loses none; nothing on the C-STORE or C-FIND path waits for it.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from dataclasses import dataclass, field

from appliance.audit.chain import utc_text
from appliance.audit.events import Outcome
from appliance.audit.message import AuditSource, render
from appliance.audit.trail import AuditRecord, AuditTrail
from appliance.config.loader import SyslogConfig

LOGGER = logging.getLogger(__name__)

CURSOR = "syslog"
FACILITY = 10  # authpriv (IHE ATNA)
NOTICE, WARNING = 5, 4
MESSAGE_ID = "IHE+RFC-3881"
APPLICATION_NAME = "appliance"
MAXIMUM_DATAGRAM = 65_000
BATCH = 200
TIMEOUT_SECONDS = 10.0
FIRST_PAUSE_SECONDS, LONGEST_PAUSE_SECONDS = 2.0, 300.0


def syslog_message(record: AuditRecord, source: AuditSource) -> bytes:
    """`<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG`: notice for a success, warning else."""
    severity = NOTICE if record.event.outcome is Outcome.SUCCESS else WARNING
    timestamp = utc_text(record.event.at).replace("+00:00", "Z")
    host = "".join(character for character in source.source_id if 33 <= ord(character) <= 126)[:255] or "-"
    header = f"<{FACILITY * 8 + severity}>1 {timestamp} {host} {APPLICATION_NAME} - {MESSAGE_ID} - "
    return header.encode("ascii") + render(record.event, source)


def octet_counted(message: bytes) -> bytes:
    """RFC 6587 3.4.1 / RFC 5425 4.3: `MSG-LEN SP SYSLOG-MSG`."""
    return f"{len(message)} ".encode("ascii") + message


@dataclass
class SyslogForwarder:
    """Sends the records after its cursor; `forward()` is one round (the worker's loop calls it)."""

    trail: AuditTrail
    config: SyslogConfig
    source: AuditSource
    context: ssl.SSLContext | None = None  # TLS: the system's CAs when None
    connection: socket.socket | None = None
    pause: float = 0.0
    retry_at: float = 0.0
    sent: int = field(default=0)

    def forward(self) -> int:
        """Send up to a batch of records; return how many (0 while waiting to retry). Never raises."""
        if not self.config.enabled or time.monotonic() < self.retry_at:
            return 0
        done = 0
        try:
            for record in self.trail.records(after=self.trail.cursor(CURSOR), batch=BATCH):
                self.send(syslog_message(record, self.source))
                self.trail.move_cursor(CURSOR, record.seq)
                done += 1
                if done >= BATCH:
                    break
        except (OSError, ssl.SSLError) as error:
            self.failed(error)
            return done
        self.pause = 0.0
        self.sent += done
        return done

    def failed(self, error: Exception) -> None:
        self.close()
        self.pause = min(max(self.pause * 2, FIRST_PAUSE_SECONDS), LONGEST_PAUSE_SECONDS)
        self.retry_at = time.monotonic() + self.pause
        LOGGER.warning(
            "audit repository %s:%d (%s) unreachable: %s; retrying in %.0f s",
            self.config.host, self.config.port, self.config.protocol, error, self.pause,
        )  # fmt: skip

    def send(self, message: bytes) -> None:
        if self.config.protocol == "udp":
            self.send_datagram(message)
            return
        if self.connection is None:
            self.connection = self.connect()
        self.connection.sendall(octet_counted(message))

    def send_datagram(self, message: bytes) -> None:
        if len(message) > MAXIMUM_DATAGRAM:
            LOGGER.warning("audit record too large for a UDP datagram (%d bytes): not sent", len(message))
            return
        if self.connection is None:
            family, kind, protocol, _name, address = socket.getaddrinfo(
                self.config.host, self.config.port, type=socket.SOCK_DGRAM
            )[0]
            self.connection = socket.socket(family, kind, protocol)
            self.connection.connect(address)
        self.connection.send(message)

    def connect(self) -> socket.socket:
        connection = socket.create_connection((self.config.host, self.config.port), timeout=TIMEOUT_SECONDS)
        if self.config.protocol != "tls":
            return connection
        context = self.context or ssl.create_default_context()
        try:
            return context.wrap_socket(connection, server_hostname=self.config.host)
        except (OSError, ssl.SSLError):
            connection.close()
            raise

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.close()
            finally:
                self.connection = None
