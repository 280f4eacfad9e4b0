"""C-GET and C-MOVE plumbing: the archive's retrieve rule (`archive.retrieve`) on pynetdicom.

- Negotiation: for a C-GET, the storage contexts the requestor proposes with the SCP role are
  accepted in a syntax the archive can send every object in, not in the ingest preference list
  (`retrieve_contexts`): of those it proposes, the one the most of the archive's newest objects of
  that class are stored in (they go out as stored), the requestor's preference between equals.
- Sub-operations: the handlers yield a `StoredReference` per object; the association's
  `send_c_store` is wrapped (`install_sender`) so that each one is sent as `archive.retrieve.payload`
  says for the syntaxes accepted for its SOP class: the file streamed from disk unchanged, or a
  dataset (decoded, re-encoded losslessly, coerced to the current identity).
- C-MOVE sub-associations propose each stored syntax and the uncompressed ones (`proposed_contexts`).
- Sending: with the `direct_store` patch in force (pynetdicom_patches), each sub-operation is
  written by `pynetdicom_patches.direct_store`: a stored file's data set streamed from disk as it
  is, or the encoded bytes of the object `prepare` made. Objects that must be decoded (a peer that
  refused the stored syntax) or coerced are prepared a few ahead in worker processes
  (`Lookahead`: the codecs hold the GIL, so threads would not run them side by side) while
  earlier ones are on the wire; the current one is prepared here when no worker has started it.
  The next object sent as stored is read while the peer takes the one before (`read_next`).
"""

from __future__ import annotations

import functools
import gc
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom.config
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.association import Association
from pynetdicom.dsutils import encode
from pynetdicom.pdu_primitives import A_ASSOCIATE, SCP_SCU_RoleSelectionNegotiation
from pynetdicom.presentation import PresentationContext, build_context

from appliance.archive.retrieve import (
    CannotSend,
    Coercion,
    Delivery,
    HeldSyntaxes,
    RetrieveItem,
    RetrievePlan,
    choose_syntax,
    payload,
    retrieve_syntax,
)
from appliance.archive.storage import IMMEDIATE
from appliance.dicom.negotiation import Kept
from appliance.dicom.pynetdicom_patches import (
    StoreContent,
    StoreRequest,
    data_set_start,
    direct_store,
    direct_store_installed,
)

LOGGER = logging.getLogger(__name__)

MAXIMUM_PROPOSED_CONTEXTS = 128  # PS3.8 9.3.2.2: presentation context IDs are odd numbers 1-255
PREPARING_PROCESSES = 2  # the machine's cores: the sender itself mostly waits on the network
LOOKAHEAD = 2 * PREPARING_PROCESSES  # objects prepared ahead of the one being sent
READ_AHEAD_BYTES = 16 * 1024 * 1024  # data sets sent as stored read during the wait for the one before, up to this long
KNOWN_PROPOSALS = 4096  # storage contexts made for C-GET requestors, kept (a few peers, ~120 SOP classes each)
RETRIEVE_CONTEXTS = Kept()  # the acceptor's contexts made for the last C-GET requests and readings


class StoredReference(Dataset):
    """Stands for an archived object in the sub-operation stream (read only when it is sent)."""

    def __init__(
        self,
        item: RetrieveItem,
        path: Path,
        coercion: Coercion | None = None,
        lookahead: Lookahead | None = None,
        position: int = 0,
    ) -> None:
        super().__init__()
        self.SOPClassUID = item.sop_class_uid
        self.SOPInstanceUID = item.sop_instance_uid
        self.item = item
        self.path = path
        self.coercion = coercion
        self.lookahead = lookahead
        self.position = position
        self.delivered = False  # set by the sender once the peer answered the C-STORE with success or warning

    def prepared(self, syntaxes: Sequence[str]) -> Prepared:
        """What to send to a peer that accepted `syntaxes`: prepared ahead, or now."""
        if self.lookahead is not None:
            return self.lookahead.prepared(self.position, self.path, syntaxes)
        return prepare(self.path, self.item, self.coercion, syntaxes)

    def sent(self) -> None:
        """The sender is done with this object (whatever the peer answered)."""
        if self.lookahead is not None:
            self.lookahead.sent(self.position)

    def read_next(self, accepted: Callable[[str], Sequence[str]]) -> None:
        """This object is on the wire: read the next one meanwhile (`Lookahead.read_next`)."""
        if self.lookahead is not None:
            self.lookahead.read_next(self.position, accepted)


@dataclass(frozen=True)
class Prepared:
    """One object ready for the wire: the data set of the stored file at `path` (from `offset`, as
    it is), or `data`, the object encoded in `transfer_syntax_uid` (an accepted one)."""

    transfer_syntax_uid: str
    delivery: Delivery
    path: Path | None = None
    offset: int = -1  # -1: where the file's data set starts
    data: bytes | None = None


def prepare(path: Path, item: RetrieveItem, coercion: Coercion | None, syntaxes: Sequence[str]) -> Prepared:
    """`archive.retrieve.payload` (the one rule) made ready for the wire; runs in worker processes too.

    Raises CannotSend, or OSError when the file cannot be read.
    """
    chosen = payload(path, item, coercion, syntaxes)
    if chosen.path is not None:
        return Prepared(chosen.transfer_syntax_uid, chosen.delivery, path=chosen.path)  # offset found when sent
    assert chosen.dataset is not None
    wire = chosen.transfer_syntax_uid
    if wire not in syntaxes:  # decoded: its own uncompressed syntax; the accepted uncompressed one then
        wire = choose_syntax(item.transfer_syntax_uid, syntaxes)
    syntax = UID(wire)
    data = encode(chosen.dataset, syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated)
    if data is None:
        raise CannotSend(f"cannot be encoded in {syntax.name}")
    return Prepared(wire, chosen.delivery, data=data)


def data_set_offset(path: Path) -> int:
    """Where the data set starts in the DICOM file at `path`."""
    with path.open("rb") as file:
        return data_set_start(file)


class Lookahead:
    """The sub-operations of one retrieve: objects that must be decoded or coerced are prepared a
    few ahead (`LOOKAHEAD`) in worker processes while the one before is sent."""

    def __init__(self, plan: RetrievePlan, locate: Callable[[RetrieveItem], Path]) -> None:
        self.plan = plan
        self.locate = locate
        self.futures: dict[int, Future[Prepared]] = {}
        self.considered = 0  # positions below this one were looked at for preparing ahead
        self.after_first: Sequence[str] | None = None  # the syntaxes to prepare ahead in, once the first is sent
        self.read: dict[int, bytes] = {}  # data sets read ahead (`read_next`), by position
        self.made: dict[int, StoredReference] = {}  # references made ahead (`read_next`), by position

    def reference(self, position: int) -> StoredReference:
        made = self.made.pop(position, None)
        if made is not None:
            return made
        item = self.plan.items[position]
        return StoredReference(item, self.locate(item), self.plan.coercion_for(item), self, position)

    def prepared(self, position: int, path: Path, syntaxes: Sequence[str]) -> Prepared:
        """The object at `position` ready for the wire (raises CannotSend or OSError). The next ones
        are handed to the workers once this one is taken care of: one prepared here does not
        compete for the cores with those ahead of it. The first one of the retrieve is even sent
        before (`sent`): with the workers decoding beside it, the first image took 7 ms to write
        to the socket instead of 1.5, and handing them their objects 1 ms more."""
        self.considered = max(self.considered, position + 1)
        item = self.plan.items[position]
        future = self.futures.pop(position, None)
        if future is not None and not future.cancel():  # a worker has it: wait for it
            self.prepare_ahead(position, syntaxes)
            try:
                return future.result()
            except BrokenProcessPool:
                LOGGER.warning("retrieve: a worker process died; preparing here")
        try:
            ready = prepare(path, item, self.plan.coercion_for(item), syntaxes)
            return with_data_read(ready, self.read.pop(position, None))
        finally:
            if position == 0:
                self.after_first = syntaxes
            else:
                self.prepare_ahead(position, syntaxes)

    def sent(self, position: int) -> None:
        """The object at `position` is on the wire (or was refused): after the first one, the
        workers get the objects ahead."""
        syntaxes, self.after_first = self.after_first, None
        if syntaxes is not None:
            self.prepare_ahead(position, syntaxes)

    def read_next(self, position: int, accepted: Callable[[str], Sequence[str]]) -> None:
        """While the peer takes the object at `position` (written, its response not yet read):
        make the next one's reference when it is on the immediate tier, and read its data set if
        it goes out as stored and is not too long (`READ_AHEAD_BYTES`). Reading it once that
        response came kept the peer waiting: 0.1 ms per CT image; making the reference, 40 µs of
        the 120 between a response and the next request (timestamps in the daemon, C-MOVE of the
        compressed study). Unreadable, it is left to its turn (the error is reported then)."""
        ahead = position + 1
        if ahead >= len(self.plan.items):
            return
        item = self.plan.items[ahead]
        if item.tier != IMMEDIATE:
            return
        if ahead not in self.made:
            self.made[ahead] = self.reference(ahead)
        if ahead in self.futures or ahead in self.read or self.plan.coercion_for(item) is not None:
            return
        try:
            if choose_syntax(item.transfer_syntax_uid, accepted(item.sop_class_uid)) != item.transfer_syntax_uid:
                return
        except CannotSend:
            return
        data = data_set_bytes(self.locate(item), READ_AHEAD_BYTES)
        if data is not None:
            self.read[ahead] = data

    def prepare_ahead(self, position: int, syntaxes: Sequence[str]) -> None:
        for ahead in range(self.considered, min(position + 1 + LOOKAHEAD, len(self.plan.items))):
            self.considered = ahead + 1
            item = self.plan.items[ahead]
            coercion = self.plan.coercion_for(item)
            if item.tier != IMMEDIATE or not needs_preparing(item, coercion, syntaxes):
                continue
            executor = ready_workers()
            if executor is None:
                return
            try:
                self.futures[ahead] = executor.submit(prepare, self.locate(item), item, coercion, list(syntaxes))
            except (BrokenProcessPool, RuntimeError, OSError) as error:
                LOGGER.warning("retrieve: cannot prepare ahead (%s); preparing each object when sent", error)
                forget_workers(str(error))
                return

    def close(self) -> None:
        """The retrieve is over (or cancelled): what was prepared ahead is dropped."""
        for future in self.futures.values():
            future.cancel()
        self.futures.clear()
        self.read.clear()
        self.made.clear()


def with_data_read(prepared: Prepared, data: bytes | None) -> Prepared:
    """`prepared`, whose stored file is sent as it is, with its data set read ahead (`data`)."""
    if data is None or prepared.path is None:
        return prepared
    return Prepared(prepared.transfer_syntax_uid, prepared.delivery, data=data)


def data_set_bytes(path: Path, longest: int) -> bytes | None:
    """The data set of the DICOM file at `path`; None when it is longer than `longest` bytes or
    cannot be read."""
    try:
        with path.open("rb") as file:
            if os.fstat(file.fileno()).st_size > longest:
                return None
            file.seek(data_set_start(file))
            return file.read()
    except (OSError, ValueError, InvalidDicomError):
        return None


def needs_preparing(item: RetrieveItem, coercion: Coercion | None, syntaxes: Sequence[str]) -> bool:
    """Whether sending `item` takes more than reading its file: decoding, re-encoding or coercing."""
    try:
        return coercion is not None or choose_syntax(item.transfer_syntax_uid, syntaxes) != item.transfer_syntax_uid
    except CannotSend:
        return False  # refused when its turn comes


_WORKERS: list[ProcessPoolExecutor] = []
_WORKERS_LOCK = threading.Lock()
_WORKERS_FAILED: list[str] = []  # why worker processes could not be used: not tried again
_WORKERS_STARTING: list[bool] = []  # the start has begun (`ready_workers`)
_WORKERS_READY = threading.Event()  # every worker has loaded this module


def workers() -> ProcessPoolExecutor | None:
    """The process pool that prepares objects ahead, started on first use (None when it cannot be:
    each object is then prepared when its turn comes)."""
    with _WORKERS_LOCK:
        if not _WORKERS and not _WORKERS_FAILED:
            try:
                context = multiprocessing.get_context("forkserver")  # not fork: the daemon has threads
                _WORKERS.append(
                    ProcessPoolExecutor(PREPARING_PROCESSES, mp_context=context, initializer=worker_started)
                )
            except (OSError, ValueError) as error:
                _WORKERS_FAILED.append(str(error))
                LOGGER.warning("retrieve: no worker processes (%s)", error)
        return _WORKERS[0] if _WORKERS else None


def ready_workers() -> ProcessPoolExecutor | None:
    """The pool once its workers are up; None until then, the first call starting them in the
    background (`start_workers`): the retrieve that needs them first prepares its objects itself
    meanwhile, instead of waiting for the processes to start before its first image (about 80 ms
    with getscu). Not at the daemon's start: most daemons never decode for a peer."""
    with _WORKERS_LOCK:
        if _WORKERS_READY.is_set() or _WORKERS_FAILED:
            return _WORKERS[0] if _WORKERS else None
        if _WORKERS_STARTING:
            return None
        _WORKERS_STARTING.append(True)
    threading.Thread(target=start_workers, name="retrieve-workers", daemon=True).start()
    return None


def start_workers() -> None:
    """Start the pool and have each worker load this module (pydicom, the codecs), then say so."""
    executor = workers()
    if executor is None:
        return
    try:
        for future in [executor.submit(worker_ready) for _ in range(PREPARING_PROCESSES)]:
            future.result()
    except (BrokenProcessPool, RuntimeError, OSError) as error:
        LOGGER.warning("retrieve: worker processes could not start (%s); preparing each object when sent", error)
        forget_workers(str(error))
        return
    _WORKERS_READY.set()


def worker_ready() -> bool:
    """Run in a worker by `start_workers`: importing this module loaded what `prepare` needs."""
    return True


def forget_workers(reason: str) -> None:
    """The pool failed: shut it down, and prepare every object when sent from now on."""
    with _WORKERS_LOCK:
        for executor in _WORKERS:
            executor.shutdown(wait=False, cancel_futures=True)
        _WORKERS.clear()
        _WORKERS_FAILED.append(reason)


def worker_started() -> None:
    """In each worker process: pydicom reads and writes without validating, as the daemons do, and
    what importing this module built stays out of the garbage collector's full passes (as the
    daemons' `settle_heap` does: one took 50 to 80 ms, a decode waiting for it)."""
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE
    gc.collect()
    gc.freeze()


def install_sender(association: Association) -> None:
    """Wrap `association.send_c_store` so that StoredReference objects are sent by the retrieve rule."""
    original: Callable[..., Any] = association.send_c_store
    accepted_by_class: dict[str, list[str]] = {}  # negotiated once: looked up per SOP class, not per object
    direct = direct_store_installed(association)

    def send_c_store(
        dataset: Any,
        msg_id: int = 1,
        priority: int = 2,
        originator_aet: str | None = None,
        originator_id: int | None = None,
    ) -> Any:
        if not isinstance(dataset, StoredReference):
            return original(dataset, msg_id, priority, originator_aet, originator_id)
        try:
            return send_stored(dataset, msg_id, priority, originator_aet, originator_id)
        finally:
            dataset.sent()

    def accepted_for(sop_class: str) -> list[str]:
        if sop_class not in accepted_by_class:
            accepted_by_class[sop_class] = accepted(association, sop_class)
        return accepted_by_class[sop_class]

    def send_stored(
        dataset: StoredReference, msg_id: int, priority: int, originator_aet: str | None, originator_id: int | None
    ) -> Any:
        sop_class = str(dataset.SOPClassUID)
        syntaxes = accepted_for(sop_class)
        try:
            if direct:
                ready = dataset.prepared(syntaxes)
                delivery = ready.delivery
            else:
                chosen = payload(dataset.path, dataset.item, dataset.coercion, syntaxes)
                delivery = chosen.delivery
        except (CannotSend, OSError) as error:
            LOGGER.warning("instance %s not sent to %s: %s", dataset.item.sop_instance_uid, peer(association), error)
            raise
        if delivery is not Delivery.AS_STORED:
            LOGGER.debug("instance %s sent %s", dataset.item.sop_instance_uid, delivery.value)
        if direct:
            request = StoreRequest(sop_class, dataset.item.sop_instance_uid, ready.transfer_syntax_uid, msg_id,
                                   priority, originator_aet, originator_id)  # fmt: skip
            content = StoreContent(ready.data, ready.path, ready.offset)
            status = direct_store(association, request, content, functools.partial(dataset.read_next, accepted_for))
        else:
            status = original(chosen.path or chosen.dataset, msg_id, priority, originator_aet, originator_id)
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


def retrieve_contexts(association: Association, held: Callable[[], HeldSyntaxes]) -> None:
    """EVT_REQUESTED: accept the storage contexts of a C-GET (the requestor asks for the SCP role)
    in the syntax `archive.retrieve.retrieve_syntax` chooses from what it proposes and what the
    archive holds (`held()`, asked only then). Made once per request and reading: the decoded
    request is shared by the associations that send the same bytes (`admission.decoded`), the
    reading by those of the same moment, and the acceptor's contexts by all (`shared_contexts`:
    the same contexts, in a list of each association's own)."""
    request = association.requestor.primitive
    if request is None or not any(
        isinstance(item, SCP_SCU_RoleSelectionNegotiation) and item.scp_role for item in request.user_information
    ):
        return
    holding = held()
    supported = list(association.acceptor.supported_contexts)  # a list of its own each time, of shared contexts
    contexts, items = request.presentation_context_definition_list, request.user_information
    key = (id(contexts), id(items), id(holding), tuple(map(id, supported)))
    kept = (contexts, items, holding, supported)
    association.acceptor.supported_contexts = RETRIEVE_CONTEXTS.get(
        key, lambda: contexts_for(request, holding, supported), kept
    )


def contexts_for(
    request: A_ASSOCIATE, held: HeldSyntaxes, supported: list[PresentationContext]
) -> list[PresentationContext]:
    """The acceptor's contexts `supported`, those of the classes `request` asks the SCP role for
    ordered as `Chooser` says."""
    scp_role = {
        str(item.sop_class_uid)
        for item in request.user_information
        if isinstance(item, SCP_SCU_RoleSelectionNegotiation) and item.scp_role
    }
    proposed: dict[str, list[str]] = {}
    for context in request.presentation_context_definition_list:
        if str(context.abstract_syntax) in scp_role:
            syntaxes = proposed.setdefault(str(context.abstract_syntax), [])
            syntaxes.extend(str(syntax) for syntax in context.transfer_syntax if str(syntax) not in syntaxes)
    choose = Chooser(held)
    return [
        choose.context(context, tuple(proposed[str(context.abstract_syntax)]))
        if str(context.abstract_syntax) in proposed
        else context
        for context in supported
    ]


class Chooser:
    """The contexts of one C-GET association: each choice made once per proposal and held counts
    (a requestor proposes the same syntaxes for its hundred classes, most of them held alike)."""

    def __init__(self, held: HeldSyntaxes) -> None:
        self.held = held
        self.chosen: dict[tuple[tuple[str, ...], int], str | None] = {}  # the counts by identity, held meanwhile

    def context(self, supported: PresentationContext, proposed: tuple[str, ...]) -> PresentationContext:
        """`supported` with the syntaxes the requestor proposed (in all its contexts for this SOP
        class), the one to accept ahead: each of the requestor's contexts then gets that one when it
        holds it, else the first of its own syntaxes (the stored objects in that syntax go as they are)."""
        sop_class = str(supported.abstract_syntax)
        counts = self.held.of_class(sop_class)
        key = (proposed, id(counts))
        if key not in self.chosen:
            self.chosen[key] = retrieve_syntax(proposed, counts)
        return ordered_context(sop_class, proposed, self.chosen[key], supported.scu_role, supported.scp_role)


@functools.lru_cache(maxsize=KNOWN_PROPOSALS)
def ordered_context(
    sop_class_uid: str, proposed: tuple[str, ...], first: str | None, scu_role: bool | None, scp_role: bool | None
) -> PresentationContext:
    """The context `Chooser.context` makes, made once per proposal and choice: a peer proposes the
    same contexts on every association, and building them (UID checks) was a tenth of the time to
    the first image. Shared between associations: pynetdicom only reads the acceptor's contexts
    while negotiating (what the `shared_contexts` patch relies on too)."""
    ordered = [first, *[syntax for syntax in proposed if syntax != first]] if first else list(proposed)
    context = build_context(sop_class_uid, ordered)
    context.scu_role = scu_role
    context.scp_role = scp_role
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
