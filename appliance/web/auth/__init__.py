"""Who is at the keyboard: logins and logouts, the first visit that creates the administrator, the
idle and absolute session limits, and the permission check every route passes (`access`)."""

from appliance.web.auth.access import configure, current_account, public, requires
from appliance.web.auth.views import blueprint

__all__ = ["blueprint", "configure", "current_account", "public", "requires"]
