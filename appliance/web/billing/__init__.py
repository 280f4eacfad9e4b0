"""The archiving supplements page (Q2): a month or a quarter, the billable studies with their rate,
those out of scope with the reason, the totals, and the CSV."""

from appliance.web.billing.views import blueprint

__all__ = ["blueprint"]
