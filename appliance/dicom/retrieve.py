"""Sending archived files on C-GET and C-MOVE sub-operations.

The handlers yield a `StoredReference` (an empty Dataset carrying the file's location) and the
association's `send_c_store` is wrapped so that, when the peer accepted the file's own transfer
syntax, the bytes stream from disk unchanged; otherwise the file is decoded and sent uncompressed
(pynetdicom then encodes it in whichever uncompressed syntax was accepted).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_GET, C_MOVE
from pynetdicom.presentation import PresentationContext, build_context

from appliance.archive.egress import Coercion, coerce
from appliance.archive.search import RetrieveItem

LOGGER = logging.getLogger(__name__)

MAXIMUM_PROPOSED_CONTEXTS = 128
PENDING = 0xFF00
PENDING_INTERVAL_SECONDS = 0.2  # PS3.8 9.3.2.2: presentation context IDs are odd numbers 1-255


class StoredReference(Dataset):
    """Stands for an archived file in the sub-operation stream (decoded only if it must be)."""

    def __init__(self, item: RetrieveItem, path: Path, coercion: Coercion | None = None) -> None:
        super().__init__()
        self.SOPClassUID = item.sop_class_uid
        self.SOPInstanceUID = item.sop_instance_uid
        self.item = item
        self.path = path
        self.coercion = coercion


def install_sender(association: Association) -> None:
    """Wrap `association.send_c_store` so that StoredReference datasets are sent from their file."""
    original: Callable[..., Any] = association.send_c_store

    def send_c_store(dataset: Any, *arguments: Any, **keywords: Any) -> Any:
        if isinstance(dataset, StoredReference):
            return original(payload_for(association, dataset), *arguments, **keywords)
        return original(dataset, *arguments, **keywords)

    association.send_c_store = send_c_store  # type: ignore[method-assign]


def throttle_pending_responses(association: Association) -> None:
    """Send C-GET / C-MOVE Pending responses at most every PENDING_INTERVAL_SECONDS.

    Pending responses are optional (PS3.4 C.4.2.3, C.4.3.3); one per image doubles the messages
    a retrieve costs. Progress is still reported several times a second, with cumulative counts,
    and the final response always goes out.
    """
    original: Callable[[Any, int], None] = association.dimse.send_msg
    last_sent = [0.0]

    def send_msg(primitive: Any, context_id: int) -> None:
        if isinstance(primitive, (C_GET, C_MOVE)) and primitive.Status == PENDING:
            now = time.monotonic()
            if now - last_sent[0] < PENDING_INTERVAL_SECONDS:
                return
            last_sent[0] = now
        original(primitive, context_id)

    association.dimse.send_msg = send_msg  # type: ignore[method-assign]


def payload_for(association: Association, reference: StoredReference) -> Path | Dataset:
    """The file itself when its syntax was accepted and its identity is current; else a dataset
    (coerced to the current identity, decompressed when the peer did not accept its syntax)."""
    syntax_accepted = accepted(association, reference.item.sop_class_uid, reference.item.transfer_syntax_uid)
    if syntax_accepted and reference.coercion is None:
        return reference.path
    dataset = dcmread(reference.path) if syntax_accepted else decoded(reference.path)
    return coerce(dataset, reference.coercion) if reference.coercion else dataset


def accepted(association: Association, sop_class_uid: str, transfer_syntax_uid: str) -> bool:
    for context in association.accepted_contexts:
        if context.abstract_syntax == sop_class_uid and context.transfer_syntax[0] == transfer_syntax_uid:
            return bool(context.as_scu)
    return False


def decoded(path: Path) -> Dataset:
    """The file's dataset, decompressed to Explicit VR Little Endian when it is compressed."""
    dataset = dcmread(path)
    if dataset.file_meta.TransferSyntaxUID.is_compressed:
        dataset.decompress(generate_instance_uid=False)  # same instance, another encoding
    return dataset


def proposed_contexts(items: list[RetrieveItem]) -> list[PresentationContext]:
    """What to propose on a C-MOVE sub-association: each stored syntax as is, and uncompressed."""
    classes: dict[str, set[str]] = {}
    for item in items:
        classes.setdefault(item.sop_class_uid, set()).add(item.transfer_syntax_uid)
    contexts: list[PresentationContext] = []
    for sop_class, syntaxes in sorted(classes.items()):
        for syntax in sorted(syntaxes - {ExplicitVRLittleEndian, ImplicitVRLittleEndian}):
            contexts.append(build_context(sop_class, [syntax]))
        contexts.append(build_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian]))
    if len(contexts) > MAXIMUM_PROPOSED_CONTEXTS:
        contexts = [build_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian]) for sop_class in classes]
    return contexts[:MAXIMUM_PROPOSED_CONTEXTS]
