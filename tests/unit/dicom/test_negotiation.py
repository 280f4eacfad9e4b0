"""`negotiation_once`: the acceptance of an association request made once per distinct request.
The same request twice: one negotiation, one encoding, and the very bytes pynetdicom sends without
the patch; a request that differs in any way it could answer differently gets its own answer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLSLossless
from pynetdicom import AE, evt, fsm
from pynetdicom.association import Association
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
    UserIdentityNegotiation,
)
from pynetdicom.presentation import build_context

from appliance.archive.retrieve import HeldSyntaxes
from appliance.dicom import admission, negotiation, pynetdicom_patches
from appliance.dicom.contexts import add_archive_contexts
from appliance.dicom.retrieve import retrieve_contexts

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
COMPRESSED_FIRST = [JPEGLSLossless, ExplicitVRLittleEndian, ImplicitVRLittleEndian]


def request_bytes(
    calling: str = "GETSCU",
    ct_syntaxes: list[str] | None = None,
    roles: tuple[bool, bool] = (False, True),
    identity: bool = False,
) -> bytes:
    """A C-GET requestor's association request: Q/R, then CT and MR storage with the SCP role."""
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = calling
    primitive.called_ae_title = "APPLIANCE"
    contexts = [
        build_context(STUDY_ROOT_GET),
        build_context(CT, ct_syntaxes or COMPRESSED_FIRST),
        build_context(MR, [ExplicitVRLittleEndian]),
    ]
    for number, context in enumerate(contexts):
        context.context_id = 2 * number + 1
    primitive.presentation_context_definition_list = contexts
    maximum = MaximumLengthNotification()
    maximum.maximum_length_received = 16384
    items: list[object] = [maximum]
    for sop_class in (CT, MR):
        role = SCP_SCU_RoleSelectionNegotiation()
        role.sop_class_uid = sop_class
        role.scu_role, role.scp_role = roles
        items.append(role)
    if identity:
        user = UserIdentityNegotiation()
        user.user_identity_type = 5  # a JSON web token: the only kinds that get a server response
        user.primary_field = b"token"
        user.positive_response_requested = True
        items.append(user)
    primitive.user_information = items
    return bytes(A_ASSOCIATE_RQ(primitive).encode())


@pytest.fixture(scope="module")
def archive_ae() -> AE:
    ae = AE("APPLIANCE")
    add_archive_contexts(ae)
    return ae


@pytest.fixture()
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The patches applied, nothing kept yet, and how often each step was really made:
    [negotiations, encodings]."""
    pynetdicom_patches.apply(disabled=frozenset())
    negotiation.NEGOTIATIONS.clear()
    negotiation.ACCEPTS.clear()
    counts = [0, 0]
    negotiate, encode = negotiation.negotiate_as_acceptor, negotiation.EncodedAccept.encode

    def counting_negotiate(*args: object) -> object:
        counts[0] += 1
        return negotiate(*args)  # type: ignore[arg-type]

    def counting_encode(self: negotiation.EncodedAccept) -> bytes:
        counts[1] += not self.encoded
        return encode(self)

    monkeypatch.setattr(negotiation, "negotiate_as_acceptor", counting_negotiate)
    monkeypatch.setattr(negotiation.EncodedAccept, "encode", counting_encode)
    yield counts
    negotiation.NEGOTIATIONS.clear()
    negotiation.ACCEPTS.clear()


def accept(ae: AE, request: bytes, identity_response: bytes | None = None) -> tuple[Association, bytes]:
    """What the archive's acceptor does with `request`: its contexts, `retrieve_contexts`, the
    negotiation, then the A-ASSOCIATE-AC the state machine makes from the accept primitive."""
    association = Association(ae, "acceptor")
    association.acceptor.ae_title = "APPLIANCE"
    association.acceptor.supported_contexts = pynetdicom_patches.share_contexts(ae.supported_contexts)
    checked = admission.check_request(request)
    assert isinstance(checked, admission.CheckedRequest)
    association.requestor.primitive = checked.to_primitive()
    if identity_response is not None:
        association.bind(evt.EVT_USER_ID, lambda event: (True, identity_response))
    retrieve_contexts(association, HeldSyntaxes)  # nothing held: the requestor's preference
    association.acse._negotiate_as_acceptor()
    primitive = association.dul.to_provider_queue.get_nowait()
    return association, bytes(fsm.A_ASSOCIATE_AC(primitive).encode())


def without_the_patch(ae: AE, request: bytes, identity_response: bytes | None = None) -> bytes:
    pynetdicom_patches.apply(disabled=frozenset({"negotiation_once"}))
    try:
        return accept(ae, request, identity_response)[1]
    finally:
        pynetdicom_patches.apply(disabled=frozenset())


def described(association: Association) -> list[tuple[object, ...]]:
    return [
        (context.context_id, str(context.abstract_syntax), context.transfer_syntax, context.as_scu, context.as_scp)
        for context in association.accepted_contexts
    ]


def test_the_same_request_is_negotiated_and_encoded_once_into_the_bytes_pynetdicom_sends(
    archive_ae: AE, counted: list[int]
) -> None:
    first, first_bytes = accept(archive_ae, request_bytes())
    second, second_bytes = accept(archive_ae, request_bytes())
    assert counted == [1, 1]
    assert first_bytes == second_bytes == without_the_patch(archive_ae, request_bytes())
    decoded = A_ASSOCIATE_AC()
    decoded.decode(second_bytes)
    assert len(decoded.presentation_context) == 3
    assert described(first) == described(second)
    assert (CT, [JPEGLSLossless], True, False) in [row[1:] for row in described(second)]  # the archive as SCU


@pytest.mark.parametrize(
    "other",
    [
        request_bytes(calling="OTHERSCU"),
        request_bytes(ct_syntaxes=[ExplicitVRLittleEndian]),
        request_bytes(roles=(True, False)),
    ],
    ids=["calling AE title", "proposed syntaxes", "requested roles"],
)
def test_a_request_that_differs_gets_its_own_answer(archive_ae: AE, counted: list[int], other: bytes) -> None:
    accept(archive_ae, request_bytes())
    _, answer = accept(archive_ae, other)
    assert answer == without_the_patch(archive_ae, other)
    assert answer != accept(archive_ae, request_bytes())[1]
    assert counted[1] == 2


def test_the_roles_a_peer_asks_for_are_negotiated_apart(archive_ae: AE, counted: list[int]) -> None:
    contexts = [build_context(CT, [ExplicitVRLittleEndian])]
    contexts[0].context_id = 1
    supported = archive_ae.supported_contexts
    as_scp, _ = negotiation.negotiate(contexts, supported, {CT: (False, True)})
    as_scu, _ = negotiation.negotiate(contexts, supported, {CT: (True, False)})
    assert (as_scp[0].as_scu, as_scp[0].as_scp) != (as_scu[0].as_scu, as_scu[0].as_scp)
    assert negotiation.negotiate(contexts, supported, {CT: (False, True)})[0] is as_scp
    assert counted[0] == 2


def test_a_user_identity_answer_is_part_of_what_is_kept(archive_ae: AE, counted: list[int]) -> None:
    request = request_bytes(identity=True)
    _, first = accept(archive_ae, request, identity_response=b"ticket-1")
    _, second = accept(archive_ae, request, identity_response=b"ticket-2")
    assert first != second
    assert second == without_the_patch(archive_ae, request, identity_response=b"ticket-2")
    assert counted == [1, 2]


def test_an_accept_that_cannot_be_a_key_is_made_as_pynetdicom_makes_it(archive_ae: AE, counted: list[int]) -> None:
    association, _ = accept(archive_ae, request_bytes())
    primitive = association.acceptor.primitive
    assert primitive is not None
    primitive._diagnostic = {"not": "a key"}  # type: ignore[assignment]
    assert negotiation.accept_key(primitive) is None
    pdu = negotiation.associate_accept(primitive)
    assert type(pdu) is A_ASSOCIATE_AC
    assert counted[1] == 1


def test_what_is_kept_is_bounded_and_the_oldest_goes_first() -> None:
    kept = negotiation.Kept(limit=2)
    made: list[str] = []

    def make(value: str) -> str:
        made.append(value)
        return value

    for key in ("a", "b", "a", "c", "b", "a"):
        kept.get(key, lambda key=key: make(key), held=None)
    assert made == ["a", "b", "c", "b", "a"]  # "a" kept while used; "b" then "a" evicted in turn
    assert len(kept.entries) == 2


def test_the_kept_accept_is_a_pdu_of_type_two_and_each_association_gets_its_own(
    archive_ae: AE, counted: list[int]
) -> None:
    association, _ = accept(archive_ae, request_bytes())
    primitive = association.acceptor.primitive
    assert primitive is not None
    first, second = negotiation.associate_accept(primitive), negotiation.associate_accept(primitive)
    assert first is not second and first.pdu_type == second.pdu_type == 0x02
    assert first.encode() == second.encode()
