"""Which MLLP connections are kept: trusted addresses have reserved slots, an untrusted address has
a cap, and a newcomer displaces the longest-idle pending connection, never an established one."""

from __future__ import annotations

from appliance.hl7.admission import ConnectionLimits, Held, Verdict, admit

LIMITS = ConnectionLimits(maximum=4, per_address=2, reserved=1, trusted=frozenset({"10.0.0.1"}))


def held(key: int, address: str, displaceable: bool = True, last: float = 0.0) -> Held:
    return Held(key, address, address in LIMITS.trusted, displaceable, last)


def test_room_is_admitted() -> None:
    assert admit(LIMITS, [], "10.0.0.9").verdict is Verdict.ADMIT


def test_an_address_at_its_cap_displaces_its_own_oldest_pending_connection() -> None:
    decision = admit(LIMITS, [held(1, "10.0.0.9", last=5), held(2, "10.0.0.9", last=3)], "10.0.0.9")
    assert decision.verdict is Verdict.ADMIT and decision.displaced is not None and decision.displaced.key == 2


def test_established_connections_are_never_displaced() -> None:
    both = [held(1, "10.0.0.9", displaceable=False), held(2, "10.0.0.9", displaceable=False)]
    assert admit(LIMITS, both, "10.0.0.9").verdict is Verdict.REFUSE


def test_the_reserved_slot_is_for_the_trusted_address() -> None:
    untrusted = [held(1, "10.0.0.7", False), held(2, "10.0.0.8", False), held(3, "10.0.0.9", False)]
    assert admit(LIMITS, untrusted, "10.0.0.6").verdict is Verdict.REFUSE
    assert admit(LIMITS, untrusted, "10.0.0.1") == admit(LIMITS, [], "10.0.0.1")


def test_a_full_listener_makes_room_for_the_trusted_address_from_the_pending_untrusted() -> None:
    full = [held(1, "10.0.0.1", True), held(2, "10.0.0.7", False), held(3, "10.0.0.8", True, 9), held(4, "10.0.0.9")]
    decision = admit(LIMITS, full, "10.0.0.1")
    assert decision.displaced is not None and decision.displaced.key == 4
