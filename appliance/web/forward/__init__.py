"""Forwarding and priors in the console: the forwarding rules and one queue per destination
(waiting, set aside with the reason, retry now), and the search of the remote archives with the
fetch of a study (the worker runs the C-FIND and the C-MOVE: the web edge never speaks DICOM)."""

from appliance.web.forward.views import blueprint

__all__ = ["blueprint"]
