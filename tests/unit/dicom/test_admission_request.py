"""The association request the guard reads and decodes (`admission.check_request`) is handed to
pynetdicom decoded (`guarded_server.GuardedDUL`): the same PDU and primitive, not decoded again;
the same bytes on another association are not decoded again either (`admission.decoded`)."""

from __future__ import annotations

from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLSLossless
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
    UserIdentityNegotiation,
)
from pynetdicom.presentation import build_context

from appliance.dicom import admission
from appliance.dicom.guarded_server import GuardedDUL

CT = "1.2.840.10008.5.1.4.1.1.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"


def request_bytes(calling: str = "GETSCU") -> bytes:
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = calling
    primitive.called_ae_title = "APPLIANCE"
    context = build_context(CT, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    context.context_id = 1
    primitive.presentation_context_definition_list = [context]
    maximum = MaximumLengthNotification()
    maximum.maximum_length_received = 16384
    primitive.user_information = [maximum]
    return A_ASSOCIATE_RQ(primitive).encode()


def test_a_checked_request_gives_its_primitive_once_then_makes_it_anew() -> None:
    checked = admission.check_request(request_bytes())
    assert isinstance(checked, admission.CheckedRequest)
    assert checked.received == request_bytes()
    first = checked.to_primitive()
    assert str(first.calling_ae_title).strip() == "GETSCU"
    assert [str(context.abstract_syntax) for context in first.presentation_context_definition_list] == [CT]
    again = checked.to_primitive()
    assert again is not first and str(again.calling_ae_title).strip() == "GETSCU"


def test_a_request_pynetdicom_cannot_decode_is_aborted() -> None:
    broken = bytearray(request_bytes())
    broken[74] = 0x99  # the first item after the fixed part is no item type pynetdicom knows
    answer = admission.check_request(bytes(broken))
    assert isinstance(answer, admission.Answer)
    assert answer.pdu == admission.abort(admission.INVALID_PARAMETER_VALUE)


def test_the_dul_takes_the_checked_request_without_decoding_it_again() -> None:
    checked = admission.check_request(request_bytes())
    assert isinstance(checked, admission.CheckedRequest)
    dul = Association(AE("APPLIANCE"), "acceptor").dul
    GuardedDUL.take_over(dul, checked)
    assert dul._decode_pdu(bytearray(request_bytes())) == (checked, "Evt6")
    decoded, event = dul._decode_pdu(bytearray(request_bytes()))  # only the first PDU is the checked one
    assert decoded is not checked and isinstance(decoded, A_ASSOCIATE_RQ) and event == "Evt6"


def test_other_bytes_than_the_checked_request_are_decoded() -> None:
    checked = admission.check_request(request_bytes())
    assert isinstance(checked, admission.CheckedRequest)
    dul = Association(AE("APPLIANCE"), "acceptor").dul
    GuardedDUL.take_over(dul, checked)
    decoded, _ = dul._decode_pdu(bytearray(request_bytes("OTHER")))
    assert decoded is not checked and str(decoded.to_primitive().calling_ae_title).strip() == "OTHER"


def get_request_bytes() -> bytes:
    """A C-GET requestor's request: its contexts, the SCP role for CT, a user identity."""
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = "GETSCU"
    primitive.called_ae_title = "APPLIANCE"
    contexts = [
        build_context(STUDY_ROOT_GET),
        build_context(CT, [JPEGLSLossless, ExplicitVRLittleEndian, ImplicitVRLittleEndian]),
    ]
    for number, context in enumerate(contexts):
        context.context_id = 2 * number + 1
    primitive.presentation_context_definition_list = contexts
    maximum = MaximumLengthNotification()
    maximum.maximum_length_received = 16384
    role = SCP_SCU_RoleSelectionNegotiation()
    role.sop_class_uid, role.scu_role, role.scp_role = CT, False, True
    identity = UserIdentityNegotiation()
    identity.user_identity_type, identity.primary_field = 1, b"user"
    primitive.user_information = [maximum, role, identity]
    return A_ASSOCIATE_RQ(primitive).encode()


def test_the_same_request_is_decoded_once_each_association_getting_its_own_checked_request() -> None:
    first, second = admission.check_request(get_request_bytes()), admission.check_request(get_request_bytes())
    assert isinstance(first, admission.CheckedRequest) and isinstance(second, admission.CheckedRequest)
    assert first is not second and first.received == second.received == get_request_bytes()
    shared = first.to_primitive()
    assert second.to_primitive() is shared  # decoded once
    assert first.to_primitive() is not shared  # each hands it over once, then makes one anew


def test_negotiating_associations_leaves_the_shared_primitive_as_decoded() -> None:
    """pynetdicom's acceptor negotiation (contexts, SCP role, user identity) only reads the request's
    primitive: after two associations it still encodes to the bytes it was decoded from."""
    checked = admission.check_request(get_request_bytes())
    assert isinstance(checked, admission.CheckedRequest)
    primitive = checked.to_primitive()
    for _ in range(2):
        association = Association(AE("APPLIANCE"), "acceptor")
        retrieve = build_context(CT, [ExplicitVRLittleEndian])
        retrieve.scu_role, retrieve.scp_role = False, True
        association.acceptor.supported_contexts = [build_context(STUDY_ROOT_GET), retrieve]
        association.requestor.primitive = primitive
        association.acse._negotiate_as_acceptor()
        assert association.is_established and len(association.accepted_contexts) == 2
    assert A_ASSOCIATE_RQ(primitive).encode() == get_request_bytes()


def test_a_request_that_cannot_be_decoded_is_not_kept() -> None:
    broken = bytearray(request_bytes("BROKEN"))
    broken[74] = 0x99
    before = admission.decoded.cache_info().currsize
    assert isinstance(admission.check_request(bytes(broken)), admission.Answer)
    assert admission.decoded.cache_info().currsize == before
