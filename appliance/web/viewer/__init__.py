"""The built-in viewer (A5, K1) and the Weasis launch (A8): see README.md in this folder."""

from appliance.web.viewer import launch as launch
from appliance.web.viewer.views import blueprint

__all__ = ["blueprint"]
