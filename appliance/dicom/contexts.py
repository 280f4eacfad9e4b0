"""Which SOP classes and transfer syntaxes the archive accepts, in the order it prefers them.

pynetdicom's acceptor takes the first syntax of *our* list that the peer proposed. Lossless
compressed syntaxes come first, so that archived JPEG-LS / JPEG 2000 files go out unchanged to peers
that take them and modalities that can compress losslessly do; uncompressed next; lossy last, so a
modality is never led to send lossy when it offered lossless (lossy objects are accepted as sent
and flagged, A1).
"""

from __future__ import annotations

from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, AllStoragePresentationContexts

# PS3.4 Annex B.5 and C.6 (pynetdicom generates these names at run time, so they are spelled out).
VERIFICATION = "1.2.840.10008.1.1"
PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"

MPPS = "1.2.840.10008.3.1.2.3.3"  # PS3.4 F.7
STORAGE_COMMITMENT = "1.2.840.10008.1.20.1"  # PS3.4 J.3

HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K_LOSSLESS_RPCL = "1.2.840.10008.1.2.4.202"
HTJ2K = "1.2.840.10008.1.2.4.203"

LOSSLESS_COMPRESSED = [
    JPEGLSLossless,
    JPEG2000Lossless,
    HTJ2K_LOSSLESS,
    HTJ2K_LOSSLESS_RPCL,
    JPEGLosslessSV1,
    JPEGLossless,
    RLELossless,
]
UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian]
LOSSY = [JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLSNearLossless, JPEG2000, HTJ2K]

STORAGE_TRANSFER_SYNTAXES = LOSSLESS_COMPRESSED + UNCOMPRESSED + LOSSY
QUERY_TRANSFER_SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]

FIND_MODELS = {PATIENT_ROOT_FIND: "PATIENT_ROOT", STUDY_ROOT_FIND: "STUDY_ROOT"}
GET_MODELS = {PATIENT_ROOT_GET: "PATIENT_ROOT", STUDY_ROOT_GET: "STUDY_ROOT"}
MOVE_MODELS = {PATIENT_ROOT_MOVE: "PATIENT_ROOT", STUDY_ROOT_MOVE: "STUDY_ROOT"}


def storage_sop_classes() -> list[str]:
    """Every storage SOP class pynetdicom knows (CR, DX, MG, US, CT, MR, SC, SR, KOS, PS, ...)."""
    return [str(context.abstract_syntax) for context in AllStoragePresentationContexts]


def add_archive_contexts(ae: AE) -> None:
    """Storage (as SCP, and as SCP role for C-GET sub-operations), verification and Q/R."""
    ae.add_supported_context(VERIFICATION, QUERY_TRANSFER_SYNTAXES)
    for sop_class in storage_sop_classes():
        ae.add_supported_context(sop_class, STORAGE_TRANSFER_SYNTAXES, scu_role=False, scp_role=True)
    for sop_class in [*FIND_MODELS, *GET_MODELS, *MOVE_MODELS, MPPS]:
        ae.add_supported_context(sop_class, QUERY_TRANSFER_SYNTAXES)
    ae.add_supported_context(STORAGE_COMMITMENT, QUERY_TRANSFER_SYNTAXES, scu_role=True, scp_role=True)
