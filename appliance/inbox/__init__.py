"""The inbox: every HL7 message received, kept with its status and the acknowledgement sent back.

The HL7 edge writes it (`appliance/hl7/inbox.py`: stored before it is applied, finished with its ACK
in the same commit). This platform package names the statuses once and gives the read-only listing
people see (the console's message log), so that no other edge has to import the HL7 one; the mirror
of `appliance.outbox`, the queue of what goes out.
"""

from appliance.inbox.log import (
    APPLIED,
    FAILED,
    RECEIVED,
    REFUSED,
    STATUSES,
    ReceivedMessage,
    Selection,
    acknowledgement_code,
    listing,
    message,
)

__all__ = [
    "APPLIED",
    "FAILED",
    "RECEIVED",
    "REFUSED",
    "STATUSES",
    "ReceivedMessage",
    "Selection",
    "acknowledgement_code",
    "listing",
    "message",
]
