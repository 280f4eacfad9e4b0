"""The backup in the console (B1, B2): the last backup per target, the USB rotation, "back up now",
the last restore drill, and the key-escrow page."""

from appliance.web.backup.views import blueprint

__all__ = ["blueprint"]
