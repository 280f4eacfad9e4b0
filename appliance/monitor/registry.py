"""Every source of the monitor, by name, in the order the dashboard and `appliance health` show them.
A source is a `Check` (`read(context) -> Reading`, see `sources`); its name is the findings' source."""

from __future__ import annotations

from appliance.monitor import certificate, clock, disk, events, outbox, raid, smart, ups
from appliance.monitor.sources import Check

SOURCES: dict[str, Check] = {
    "disk": disk.read,
    "raid": raid.read,
    "smart": smart.read,
    "ups": ups.read,
    "outbox": outbox.read,
    "time": clock.read,
    "certificate": certificate.read,
    "events": events.read,
}
