"""Who may associate, and what each association may do (A6).

Production: only configured AE titles, and only from their configured host. Development (make run
without a configuration file): any calling AE title from the loopback address as well, with a
warning. The rights of an association are decided once, when it is requested.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import weakref
from dataclasses import dataclass

from appliance.config import Config

LOGGER = logging.getLogger(__name__)

ALL_RIGHTS = frozenset({"store", "query", "retrieve", "worklist"})


@dataclass(frozen=True)
class Admission:
    admitted: bool
    rights: frozenset[str]
    reason: str


class AccessPolicy:
    """Admits or refuses association requests, and remembers each association's rights."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.rights_of: weakref.WeakKeyDictionary[object, frozenset[str]] = weakref.WeakKeyDictionary()

    def admit(self, calling_ae_title: str, address: str) -> Admission:
        """Decide on a request from `calling_ae_title` at `address`."""
        peer = self.config.peer(calling_ae_title)
        if peer is not None and same_host(peer.host, address):
            return Admission(True, peer.rights, f"known peer {peer.ae_title}")
        if self.config.is_development and is_loopback(address):
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
