"""C-GET and C-MOVE plumbing: the archive's retrieve rule (`archive.retrieve`) on pynetdicom.

- Negotiation: for a C-GET, the storage contexts the requestor proposes with the SCP role are
  accepted in a syntax the archive can send every object in (the requestor's preference first),
  not in the ingest preference list (`retrieve_contexts`).
- Sub-operations: the handlers yield a `StoredReference` per object; the association's
  `send_c_store` is wrapped (`install_sender`) so that each one is sent as `archive.retrieve.payload`
  says for the syntaxes accepted for its SOP class: the file streamed from disk unchanged, or a
  dataset (decoded, re-encoded losslessly, coerced to the current identity).
- C-MOVE sub-associations propose each stored syntax and the uncompressed ones (`proposed_contexts`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation
from pynetdicom.presentation import PresentationContext, build_context

from appliance.archive.retrieve import (
    CannotSend,
    Coercion,
    Delivery,
    RetrieveItem,
    RetrievePlan,
    payload,
    preferred_syntax,
)

LOGGER = logging.getLogger(__name__)

MAXIMUM_PROPOSED_CONTEXTS = 128  # PS3.8 9.3.2.2: presentation context IDs are odd numbers 1-255


class StoredReference(Dataset):
    """Stands for an archived object in the sub-operation stream (read only when it is sent)."""

    def __init__(self, item: RetrieveItem, path: Path, coercion: Coercion | None = None) -> None:
        super().__init__()
        self.SOPClassUID = item.sop_class_uid
        self.SOPInstanceUID = item.sop_instance_uid
        self.item = item
        self.path = path
        self.coercion = coercion
        self.delivered = False  # set by the sender once the peer answered the C-STORE with success or warning


def install_sender(association: Association) -> None:
    """Wrap `association.send_c_store` so that StoredReference objects are sent by the retrieve rule."""
    original: Callable[..., Any] = association.send_c_store
    accepted_by_class: dict[str, list[str]] = {}  # negotiated once: looked up per SOP class, not per object

    def send_c_store(dataset: Any, *arguments: Any, **keywords: Any) -> Any:
        if not isinstance(dataset, StoredReference):
            return original(dataset, *arguments, **keywords)
        sop_class = str(dataset.SOPClassUID)
        if sop_class not in accepted_by_class:
            accepted_by_class[sop_class] = accepted(association, sop_class)
        try:
            chosen = payload(dataset.path, dataset.item, dataset.coercion, accepted_by_class[sop_class])
        except (CannotSend, OSError) as error:
            LOGGER.warning("instance %s not sent to %s: %s", dataset.item.sop_instance_uid, peer(association), error)
            raise
        if chosen.delivery is not Delivery.AS_STORED:
            LOGGER.debug("instance %s sent %s", dataset.item.sop_instance_uid, chosen.delivery.value)
        status = original(chosen.path or chosen.dataset, *arguments, **keywords)
        dataset.delivered = succeeded(status)
        return status

    association.send_c_store = send_c_store  # type: ignore[method-assign]


def succeeded(status: Any) -> bool:
    """Whether a C-STORE response status is success or a warning (PS3.4 B.2.3)."""
    value = getattr(status, "Status", None)
    return isinstance(value, int) and (value == 0 or value & 0xF000 == 0xB000)


def accepted(association: Association, sop_class_uid: str) -> list[str]:
    """The transfer syntaxes accepted for sending `sop_class_uid` on `association`, in context order."""
    return [
        str(context.transfer_syntax[0])
        for context in sorted(association.accepted_contexts, key=lambda context: context.context_id or 0)
        if context.abstract_syntax == sop_class_uid and context.as_scu
    ]


def peer(association: Association) -> str:
    return str(association.acceptor.ae_title if association.is_requestor else association.requestor.ae_title).strip()


def retrieve_contexts(association: Association) -> None:
    """EVT_REQUESTED: accept the storage contexts of a C-GET (the requestor asks for the SCP role)
    in the first syntax it proposes that the archive can send anything in."""
    request = association.requestor.primitive
    if request is None:
        return
    scp_role = {
        str(item.sop_class_uid)
        for item in request.user_information
        if isinstance(item, SCP_SCU_RoleSelectionNegotiation) and item.scp_role
    }
    if not scp_role:
        return
    proposed: dict[str, list[str]] = {}
    for context in request.presentation_context_definition_list:
        if str(context.abstract_syntax) in scp_role:
            syntaxes = proposed.setdefault(str(context.abstract_syntax), [])
            syntaxes.extend(str(syntax) for syntax in context.transfer_syntax if str(syntax) not in syntaxes)
    association.acceptor.supported_contexts = [
        retrieve_context(context, proposed[str(context.abstract_syntax)])
        if str(context.abstract_syntax) in proposed
        else context
        for context in association.acceptor.supported_contexts
    ]


def retrieve_context(supported: PresentationContext, proposed: list[str]) -> PresentationContext:
    """`supported` with the syntaxes the requestor proposed (in all its contexts for this SOP class),
    the first one the archive can send anything in ahead: each of the requestor's contexts then gets
    that one when it holds it, else the first of its own syntaxes (the stored objects in that syntax
    go as they are)."""
    first = preferred_syntax(proposed)
    ordered = [first, *[syntax for syntax in proposed if syntax != first]] if first else proposed
    context = build_context(str(supported.abstract_syntax), ordered)
    context.scu_role = supported.scu_role
    context.scp_role = supported.scp_role
    return context


def proposed_contexts(plan: RetrievePlan) -> list[PresentationContext]:
    """What to propose on a C-MOVE sub-association: each stored syntax as is, and uncompressed."""
    contexts: list[PresentationContext] = []
    uncompressed = {ExplicitVRLittleEndian, ImplicitVRLittleEndian}
    for sop_class, syntaxes in sorted(plan.syntaxes_by_class().items()):
        for syntax in sorted(syntaxes - uncompressed):
            contexts.append(build_context(sop_class, [syntax]))
        contexts.append(build_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian]))
    if len(contexts) > MAXIMUM_PROPOSED_CONTEXTS:
        contexts = [
            build_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
            for sop_class in plan.syntaxes_by_class()
        ]
    return contexts[:MAXIMUM_PROPOSED_CONTEXTS]
