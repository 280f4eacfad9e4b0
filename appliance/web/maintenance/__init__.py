"""The maintenance access page (H4): an administrator opens the contractor's tunnel for some hours,
with a reason and the practice's consent, sees until when it stays open, and closes it at once.
The tunnel itself is run by `appliance-tunnel` (appliance.maintenance), never by the console."""

from appliance.web.maintenance.views import blueprint

__all__ = ["blueprint"]
