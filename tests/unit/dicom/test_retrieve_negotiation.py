"""C-GET negotiation (`dicom.retrieve.retrieve_contexts`): the storage contexts a requestor proposes
with the SCP role are accepted in the syntax, of those it proposes that the archive can send anything
in, the most of the archive's newest objects are held in (its first with nothing held), and the
contexts made for a proposal and choice are made once and shared by the associations that make them
again."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit, JPEGLSLossless
from pynetdicom import AE
from pynetdicom.pdu_primitives import A_ASSOCIATE, SCP_SCU_RoleSelectionNegotiation
from pynetdicom.presentation import build_context, negotiate_as_acceptor

from appliance.archive.retrieve import HeldSyntaxes
from appliance.dicom import retrieve
from appliance.dicom.contexts import add_archive_contexts

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"


def association(proposed: dict[str, list[str]], scp_role: set[str]) -> Any:
    """An acceptor's association holding a request for `proposed` (SOP class: syntaxes, one context
    each, plus C-GET), with the SCP role asked for the classes of `scp_role`."""
    request = A_ASSOCIATE()
    contexts = [build_context(STUDY_ROOT_GET, [ExplicitVRLittleEndian])]
    contexts += [build_context(sop_class, syntaxes) for sop_class, syntaxes in proposed.items()]
    for number, context in enumerate(contexts):
        context.context_id = 2 * number + 1
    request.presentation_context_definition_list = contexts
    for sop_class in sorted(scp_role):
        role = SCP_SCU_RoleSelectionNegotiation()
        role.sop_class_uid = sop_class
        role.scu_role, role.scp_role = False, True
        request.user_information.append(role)
    archive = AE("APPLIANCE")
    add_archive_contexts(archive)
    acceptor = SimpleNamespace(supported_contexts=list(archive.supported_contexts))
    return SimpleNamespace(requestor=SimpleNamespace(primitive=request), acceptor=acceptor)


def negotiated(assoc: Any) -> dict[str, str]:
    request = assoc.requestor.primitive
    roles = {str(item.sop_class_uid): (item.scu_role, item.scp_role) for item in request.user_information}
    result, _ = negotiate_as_acceptor(request.presentation_context_definition_list, assoc.acceptor.supported_contexts,
                                      roles)  # fmt: skip
    return {str(context.abstract_syntax): str(context.transfer_syntax[0]) for context in result if context.result == 0}


def supported(assoc: Any, sop_class: str) -> Any:
    return next(context for context in assoc.acceptor.supported_contexts if context.abstract_syntax == sop_class)


def test_the_requestors_first_producible_syntax_is_accepted() -> None:
    assoc = association(
        {CT: [JPEGBaseline8Bit, ImplicitVRLittleEndian, JPEGLSLossless], MR: [JPEGLSLossless, ExplicitVRLittleEndian]},
        {CT, MR},
    )
    retrieve.retrieve_contexts(assoc, HeldSyntaxes)
    assert negotiated(assoc) == {STUDY_ROOT_GET: ExplicitVRLittleEndian, CT: ImplicitVRLittleEndian, MR: JPEGLSLossless}
    assert supported(assoc, CT).scp_role is True and supported(assoc, CT).scu_role is False


def test_a_class_proposed_without_the_scp_role_keeps_the_archives_order() -> None:
    assoc = association({CT: [ExplicitVRLittleEndian, JPEGLSLossless]}, set())
    before = supported(assoc, CT)
    retrieve.retrieve_contexts(assoc, HeldSyntaxes)
    assert supported(assoc, CT) is before
    assert negotiated(assoc)[CT] == JPEGLSLossless  # the ingest preference: lossless compressed first


def test_the_contexts_of_a_proposal_are_made_once_and_shared() -> None:
    first = association({CT: [ExplicitVRLittleEndian, JPEGLSLossless]}, {CT})
    again = association({CT: [ExplicitVRLittleEndian, JPEGLSLossless]}, {CT})
    other = association({CT: [JPEGLSLossless, ExplicitVRLittleEndian]}, {CT})
    held_compressed = association({CT: [ExplicitVRLittleEndian, JPEGLSLossless]}, {CT})
    for assoc in (first, again, other):
        retrieve.retrieve_contexts(assoc, HeldSyntaxes)
    retrieve.retrieve_contexts(held_compressed, lambda: held({CT: {JPEGLSLossless: 5}}))
    assert supported(first, CT) is supported(again, CT)
    assert supported(other, CT) is not supported(first, CT)
    assert supported(held_compressed, CT) is not supported(first, CT)  # the same proposal, another choice
    assert [negotiated(assoc)[CT] for assoc in (first, again, other, held_compressed)] == [
        ExplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        JPEGLSLossless,
        JPEGLSLossless,
    ]
    assert list(supported(first, CT).transfer_syntax) == [ExplicitVRLittleEndian, JPEGLSLossless]


def held(by_class: dict[str, dict[str, int]]) -> HeldSyntaxes:
    return HeldSyntaxes(by_class, {})


def test_the_syntax_the_archive_holds_its_objects_in_is_accepted_when_proposed() -> None:
    """getscu +xt prefers JPEG-LS: an archive holding its CT uncompressed sends them as they are
    rather than encoding each one, and its JPEG-LS MR as they are too."""
    proposal = {CT: [JPEGLSLossless, ExplicitVRLittleEndian], MR: [JPEGLSLossless, ExplicitVRLittleEndian]}
    assoc = association(proposal, {CT, MR})
    retrieve.retrieve_contexts(assoc, lambda: held({CT: {ExplicitVRLittleEndian: 150, JPEGLSLossless: 50},
                                                    MR: {JPEGLSLossless: 80}}))  # fmt: skip
    assert negotiated(assoc) == {STUDY_ROOT_GET: ExplicitVRLittleEndian, CT: ExplicitVRLittleEndian, MR: JPEGLSLossless}


def test_what_the_archive_holds_is_asked_only_for_a_retrieve() -> None:
    asked: list[bool] = []

    def holding() -> HeldSyntaxes:
        asked.append(True)
        return HeldSyntaxes()

    retrieve.retrieve_contexts(association({CT: [ExplicitVRLittleEndian]}, set()), holding)
    assert asked == []
    retrieve.retrieve_contexts(association({CT: [ExplicitVRLittleEndian]}, {CT}), holding)
    assert asked == [True]


def test_the_contexts_are_made_once_per_request_and_reading() -> None:
    """Associations sending the same bytes share their decoded request (`admission.decoded`), and the
    acceptor's contexts are the AE's own (in a new list each time): the same request and reading give
    the same list, made once."""
    proposal = {CT: [JPEGLSLossless, ExplicitVRLittleEndian]}
    first = association(proposal, {CT})
    again = association(proposal, {CT})
    again.requestor = first.requestor  # the same decoded request
    again.acceptor.supported_contexts = list(first.acceptor.supported_contexts)  # the AE's own, a list of its own
    later = association(proposal, {CT})
    later.requestor, later.acceptor.supported_contexts = first.requestor, list(first.acceptor.supported_contexts)
    reading = held({CT: {ExplicitVRLittleEndian: 5}})
    retrieve.retrieve_contexts(first, lambda: reading)
    retrieve.retrieve_contexts(again, lambda: reading)
    retrieve.retrieve_contexts(later, lambda: held({CT: {JPEGLSLossless: 5}}))
    assert again.acceptor.supported_contexts is first.acceptor.supported_contexts
    assert later.acceptor.supported_contexts is not first.acceptor.supported_contexts
    assert [negotiated(assoc)[CT] for assoc in (first, again, later)] == [
        ExplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        JPEGLSLossless,
    ]
