"""An association's acceptance made once per distinct request (the `negotiation_once` patch).

A peer proposes the same presentation contexts on every association: DCMTK's getscu 121 storage
contexts, a modality its handful. For each one pynetdicom negotiates them against the archive's 179
contexts, then makes the A-ASSOCIATE-AC PDU from the accept primitive and encodes it: in-process,
for getscu's request, 2.3 ms, 1.3 ms and 1.7 ms, the largest part of what the archive does between
the request and its answer (the request itself is decoded once: `admission.decoded`).

- `negotiate` stands in for `negotiate_as_acceptor` in pynetdicom's ACSE: the same answer, kept for
  the last `KEPT` distinct inputs. Its key is the requestor's context list by identity (the decoded
  request is shared between the associations of the same bytes, `admission`), the acceptor's
  contexts by identity (the AE's own, shared by `shared_contexts`, and those `retrieve_contexts`
  keeps per proposal) and the requested roles by value. Each entry holds what its key names, so an
  identity in a key cannot be another object's while the entry lives.
- `associate_accept` stands in for the A-ASSOCIATE-AC PDU class in pynetdicom's state machine: a
  PDU whose `encode` gives the bytes made for the first primitive of the same content. Its key is
  the primitive's fields by value, its result contexts and role items by identity (those of a kept
  negotiation), every other user information item by value.

Shared results are only read: pynetdicom reads an association's accepted contexts and its user
information items, never changes them, and the archive reads them too (`retrieve.py`). Whatever
cannot be keyed (an item holding a list, say) is negotiated and encoded as pynetdicom does.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from pydicom.uid import UID
from pynetdicom.pdu import A_ASSOCIATE_AC
from pynetdicom.pdu_primitives import A_ASSOCIATE, SCP_SCU_RoleSelectionNegotiation
from pynetdicom.presentation import PresentationContext, negotiate_as_acceptor

ASSOCIATE_AC = 0x02  # PDU type (PS3.8 9.3.3)
KEPT = 32  # distinct requests kept: a practice's peers send a handful each
Negotiated = tuple[list[PresentationContext], list[SCP_SCU_RoleSelectionNegotiation]]


class Kept:
    """A bounded, thread-safe map of the last `limit` keys used to what they made, with the objects
    their identities name (kept alive so that no identity in a key is reused)."""

    def __init__(self, limit: int = KEPT) -> None:
        self.limit = limit
        self.entries: OrderedDict[Hashable, tuple[Any, object]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], Any], held: object) -> Any:
        """What `make()` made for `key` (made now when not kept); `held` is kept with it."""
        with self.lock:
            entry = self.entries.get(key)
            if entry is not None:
                self.entries.move_to_end(key)
                return entry[0]
        made = make()
        with self.lock:
            self.entries[key] = (made, held)
            while len(self.entries) > self.limit:
                self.entries.popitem(last=False)
        return made

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


NEGOTIATIONS = Kept()
ACCEPTS = Kept()


def negotiate(
    rq_contexts: list[PresentationContext],
    ac_contexts: list[PresentationContext],
    rq_roles: dict[UID, tuple[bool | None, bool | None]] | None = None,
) -> Negotiated:
    """pynetdicom's `negotiate_as_acceptor(rq_contexts, ac_contexts, rq_roles)`, kept."""
    roles = rq_roles or {}
    key = (id(rq_contexts), tuple(map(id, ac_contexts)), tuple(sorted(roles.items())))  # roles: UID -> 2 flags
    held = (rq_contexts, list(ac_contexts))
    return NEGOTIATIONS.get(key, lambda: negotiate_as_acceptor(rq_contexts, ac_contexts, roles), held)  # type: ignore[no-any-return]


class EncodedAccept(A_ASSOCIATE_AC):
    """An A-ASSOCIATE-AC PDU that keeps its encoding (`encoded`, made on the first `encode`)."""

    encoded: bytes = b""

    @property
    def pdu_type(self) -> int:
        """pynetdicom finds a PDU's type by its exact class."""
        return ASSOCIATE_AC

    def encode(self) -> bytes:
        if not self.encoded:
            self.encoded = super().encode()
        return self.encoded


def associate_accept(primitive: A_ASSOCIATE | None = None) -> A_ASSOCIATE_AC:
    """The A-ASSOCIATE-AC PDU of `primitive`, its encoding made once per distinct content."""
    if primitive is None:
        return A_ASSOCIATE_AC()
    key = accept_key(primitive)
    if key is None:
        return A_ASSOCIATE_AC(primitive)
    held = (list(primitive.presentation_context_definition_results_list), list(primitive.user_information))
    template: EncodedAccept = ACCEPTS.get(key, lambda: encoded_accept(primitive), held)
    return copy.copy(template)


def encoded_accept(primitive: A_ASSOCIATE) -> EncodedAccept:
    pdu = EncodedAccept(primitive)
    pdu.encode()
    return pdu


def accept_key(primitive: A_ASSOCIATE) -> Hashable | None:
    """The accept primitive's content as a key, or None when a field cannot be one."""
    try:
        fields = tuple(
            (name, tuple(value) if isinstance(value, list) else value)
            for name, value in sorted(vars(primitive).items())
            if name not in ("_presentation_context_definition_results_list", "_user_information")
        )
        contexts = tuple(map(id, primitive.presentation_context_definition_results_list))
        items = tuple(item_key(item) for item in primitive.user_information)
        key = (fields, contexts, items)
        hash(key)
    except TypeError:
        return None
    return key


def item_key(item: object) -> Hashable:
    """A user information item as a key: a role item by identity (a kept negotiation's), any other
    by its type and values."""
    if isinstance(item, SCP_SCU_RoleSelectionNegotiation):
        return id(item)
    return (type(item).__name__, tuple(sorted(vars(item).items())))
