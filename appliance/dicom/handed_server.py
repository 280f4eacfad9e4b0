"""The association server of a serving process (`handoff`): its connections come from the
acceptor's channel, admitted and with their association request already read, instead of from a
listening socket. Everything after the request is `guarded_server`'s: the request handed to
pynetdicom as read and as decoded, PDUs over the maximum refused, the network timeout."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from typing import Any

from pynetdicom.transport import RequestHandler

from appliance.dicom import admission, handoff
from appliance.dicom.admission import Answer
from appliance.dicom.guarded_server import GuardedRequestHandler, GuardedServer

LOGGER = logging.getLogger(__name__)


class HandedRequestHandler(GuardedRequestHandler):
    """Runs a handed connection's association to its end, then tells the acceptor its place is free."""

    server: HandedServer

    def handle(self) -> None:
        handed = self.server.take_handed(self.request)
        try:
            checked = admission.check_request(handed.request)
            if isinstance(checked, Answer):  # the acceptor checked the same bytes: not expected
                self.server.guard.refuse(self.request, handed.address[0], checked)
                return
            self.association_request = checked
            self.request.settimeout(self.server.guard.settings.current.dicom.network_timeout_seconds)
            RequestHandler.handle(self)
            self.wait_for_end()
        finally:
            self.server.reports.ended(handed.token)
        self.server.standby.prepare()


class HandedServer(GuardedServer):
    """A `GuardedServer` whose "listening socket" is the channel from the acceptor."""

    handler_class = HandedRequestHandler

    def __init__(self, *arguments: Any, channel: socket.socket, **keywords: Any) -> None:
        self.channel = channel
        self.reports = handoff.Reports(channel)
        self.handed: dict[socket.socket, handoff.Handed] = {}
        self.handed_lock = threading.Lock()
        self.acceptor_gone = False
        super().__init__(*arguments, **keywords)

    def server_bind(self) -> None:
        """No socket of its own: the server waits on the channel."""
        if self.socket is not None:
            self.socket.close()
        self.socket = self.channel

    def server_activate(self) -> None:
        """The acceptor listens."""

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        """The next connection handed over. A liveness question is answered here, in the thread that
        takes the connections (socketserver passes over the OSError raised after it). When the
        acceptor has closed the channel (its process ended), this process stops as on SIGTERM."""
        taken = None if self.acceptor_gone else handoff.take(self.channel)
        if taken is None:
            if not self.acceptor_gone:
                self.acceptor_gone = True
                LOGGER.error("the archive's acceptor closed the channel: stopping")
                os.kill(os.getpid(), signal.SIGTERM)
            raise ConnectionAbortedError("the acceptor closed the channel")
        if isinstance(taken, handoff.Handed):  # a liveness question: answered, no request to serve
            self.reports.alive()
            raise InterruptedError("a liveness question, answered")
        connection, handed = taken
        with self.handed_lock:
            self.handed[connection] = handed
        return connection, handed.address

    def take_handed(self, connection: socket.socket) -> handoff.Handed:
        with self.handed_lock:
            return self.handed.pop(connection)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """The acceptor counted and admitted it."""
        return True

    def server_close(self) -> None:
        """The channel stays open until the process ends: the associations still running report
        their end on it."""
