"""Which MLLP connections the listener keeps, so that a flood of idle or hostile connections never
starves the RIS: a limit on connections held at once, slots only trusted addresses (the RIS) may
use, a cap per untrusted address, and room made for a newcomer by closing a connection that has
never sent a message (the oldest first) rather than by refusing the newcomer.

A connection is *pending* until its first message has been answered; after that it is
*established* and only its idle timeout or its peer closes it. `admit` is a pure decision over
the connections held; the listener acts on it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ConnectionLimits:
    """`maximum` connections at once, of which `reserved` only for `trusted` addresses; at most
    `per_address` from one untrusted address; closed after `idle_seconds` without a byte."""

    maximum: int = 64
    per_address: int = 8
    reserved: int = 8
    trusted: frozenset[str] = frozenset()
    idle_seconds: float = 300.0

    def is_trusted(self, address: str) -> bool:
        return address in self.trusted


@dataclass(frozen=True)
class Held:
    """What the decision needs of a connection held: its address, whether it is pending (no
    message answered yet) and not busy, and when it last received a byte."""

    key: int
    address: str
    trusted: bool
    displaceable: bool  # pending and not busy with a message
    last_activity: float


class Verdict(enum.Enum):
    ADMIT = "admit"
    REFUSE = "refuse"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    displaced: Held | None = None  # close this one to make room (verdict ADMIT)
    reason: str = ""  # why refused, or why `displaced` is closed


def admit(limits: ConnectionLimits, held: Iterable[Held], address: str) -> Decision:
    """Whether a new connection from `address` is kept, and which pending one makes room for it."""
    connections = list(held)
    if limits.is_trusted(address):
        if len(connections) < limits.maximum:
            return Decision(Verdict.ADMIT)
        return displace(connections, lambda found: not found.trusted, "the listener is full")
    untrusted = [found for found in connections if not found.trusted]
    same_address = [found for found in untrusted if found.address == address]
    if len(same_address) >= limits.per_address:
        return displace(same_address, lambda _found: True, f"{limits.per_address} connections from this address")
    if len(untrusted) >= max(limits.maximum - limits.reserved, 0):
        return displace(untrusted, lambda _found: True, "the listener is full")
    return Decision(Verdict.ADMIT)


def displace(candidates: list[Held], eligible: Callable[[Held], bool], reason: str) -> Decision:
    """Make room by closing the longest-idle displaceable candidate; refuse when there is none."""
    victims = [found for found in candidates if found.displaceable and eligible(found)]
    if not victims:
        return Decision(Verdict.REFUSE, reason=reason)
    return Decision(Verdict.ADMIT, min(victims, key=lambda found: found.last_activity), reason)
