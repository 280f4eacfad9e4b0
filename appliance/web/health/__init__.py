"""The box's health in the console (H5): the tiles of the home page read from the stored findings,
a detail page per source, the plots (disk use and its forecast, images and studies received per
day, the UPS's charge during the last outage) drawn as SVG on the server, and the "send a test
alert" button. No page runs a check: `appliance-monitor` does, and stores what it found."""

from appliance.web.health.views import blueprint

__all__ = ["blueprint"]
