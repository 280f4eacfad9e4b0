"""DICOM status codes the archive answers, named, with the clause that defines them."""

SUCCESS = 0x0000  # PS3.7 C.1.1
PENDING = 0xFF00  # PS3.4 C.4.1.1.4 matches / sub-operations continuing
CANCEL = 0xFE00  # PS3.4 C.4.1.1.4 matching or sub-operations terminated due to Cancel
NOT_AUTHORIZED = 0x0124  # PS3.7 C.5.x Refused: Not Authorized
SOP_CLASS_NOT_SUPPORTED = 0x0122  # PS3.7 C.5.x Refused: SOP Class not supported (on this context)
OUT_OF_RESOURCES = 0xA700  # PS3.4 B.2.3 (storage) and C.4.1.1.4 (find): refused, out of resources
MOVE_DESTINATION_UNKNOWN = 0xA801  # PS3.4 C.4.2.1.5
UNABLE_TO_PERFORM_SUBOPERATIONS = 0xA702  # PS3.4 C.4.2.1.5 refused: out of resources, sub-operations
DATASET_DOES_NOT_MATCH = 0xA900  # PS3.4 B.2.3 data set does not match SOP class (also C.4.1.1.4 identifier)
IDENTIFIER_DOES_NOT_MATCH = 0xA900  # PS3.4 C.4.2.1.5 / C.4.3.1.4 identifier does not match SOP class
CANNOT_UNDERSTAND = 0xC000  # PS3.4 B.2.3 error: cannot understand
UNABLE_TO_PROCESS = 0xC001  # PS3.4 C.4.1.1.4 unable to process
PROCESSING_FAILURE = 0x0110  # PS3.7 C.4.2 processing failure

# A-ASSOCIATE-RJ (PS3.8 9.3.4): result, source, reason.
REJECTED_PERMANENT = 0x01
SOURCE_SERVICE_USER = 0x01
REASON_CALLING_AE_NOT_RECOGNIZED = 0x03

# DIMSE-N (MPPS, storage commitment), PS3.7 C.5 and PS3.4 F.7 / J.3.
DUPLICATE_SOP_INSTANCE = 0x0111  # PS3.7 C.5.6 failure: duplicate SOP Instance
NO_SUCH_OBJECT_INSTANCE = 0x0112  # PS3.7 C.5.7 failure: no such SOP Instance
INVALID_ATTRIBUTE_VALUE = 0x0106  # PS3.7 C.5.4 failure: invalid attribute value
