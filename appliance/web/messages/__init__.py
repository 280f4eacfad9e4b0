"""The HL7 message log: what the RIS sent (the inbox) and what the box sends to the RIS and the
modalities (the outbox), filtered and paged; the content of a message for administrators only, and
the retry of a parked message."""

from appliance.web.messages.views import blueprint

__all__ = ["blueprint"]
