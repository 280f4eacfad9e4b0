"""Who may associate, and what each association may do (A6).

Production: only configured AE titles, and only from their configured host; and the box's own health
monitor (`MONITOR_AE_TITLE` from the loopback address) with no right at all: its C-ECHO needs none.
Development (make run
without a configuration file): any calling AE title from the loopback address as well, with a
warning. The rights of an association are decided once, when it is requested, with the peers
configured at that moment (a reload applies to the next association).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import weakref
from dataclasses import dataclass

from pynetdicom.events import Event

from appliance.config import Settings
from appliance.dicom import statuses
from appliance.monitor.dicom import MONITOR_AE_TITLE

LOGGER = logging.getLogger(__name__)

ALL_RIGHTS = frozenset({"store", "query", "retrieve", "worklist"})


@dataclass(frozen=True)
class Admission:
    admitted: bool
    rights: frozenset[str]
    reason: str


class AccessPolicy:
    """Admits or refuses association requests, and remembers each association's rights."""

    def __init__(self, settings: Settings, service: str) -> None:
        self.settings = settings
        self.service = service
        self.rights_of: weakref.WeakKeyDictionary[object, frozenset[str]] = weakref.WeakKeyDictionary()

    def on_requested(self, event: Event) -> None:
        """EVT_REQUESTED: admit known peers (A6); refuse others with A-ASSOCIATE-RJ and a logged reason."""
        request = event.assoc.requestor.primitive
        calling = str(request.calling_ae_title if request else "").strip()
        address = event.assoc.requestor.address
        admission = self.admit(calling, address)
        if not admission.admitted:
            LOGGER.warning("%s association from %s (%s) rejected: %s", self.service, calling, address, admission.reason)
            event.assoc.acse.send_reject(
                statuses.REJECTED_PERMANENT, statuses.SOURCE_SERVICE_USER, statuses.REASON_CALLING_AE_NOT_RECOGNIZED
            )
            event.assoc.kill()  # waits until the A-ASSOCIATE-RJ has gone out
            return
        self.remember(event.assoc, admission.rights)

    def admit(self, calling_ae_title: str, address: str) -> Admission:
        """Decide on a request from `calling_ae_title` at `address`."""
        config = self.settings.current
        peer = config.peer(calling_ae_title)
        if peer is not None and same_host(peer.host, address):
            return Admission(True, peer.rights, f"known peer {peer.ae_title}")
        if calling_ae_title == MONITOR_AE_TITLE and is_loopback(address):
            return Admission(True, frozenset(), "the box's health monitor (verification only)")
        if config.is_development and is_loopback(address):
            return Admission(True, ALL_RIGHTS, "development mode: any AE title from the loopback address")
        if peer is not None:
            return Admission(
                False, frozenset(), f"AE title {calling_ae_title} is configured for {peer.host}, not {address}"
            )
        return Admission(False, frozenset(), f"AE title {calling_ae_title} is not a configured peer")

    def remember(self, association: object, rights: frozenset[str]) -> None:
        self.rights_of[association] = rights

    def may(self, association: object, right: str) -> bool:
        return right in self.rights_of.get(association, frozenset())


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def same_host(configured: str, address: str) -> bool:
    """Whether the peer's configured host (address or name) is `address`."""
    if configured == address:
        return True
    try:
        resolved = {info[4][0] for info in socket.getaddrinfo(configured, None)}
    except OSError:
        return False
    return address in resolved


def caller(event: Event) -> str:
    """The calling AE title of the association an event belongs to."""
    return str(event.assoc.requestor.ae_title).strip()
