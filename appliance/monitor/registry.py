"""Every source of the monitor by name, in the order the dashboard lists them. `appliance-monitor`
runs each of them every round (`appliance.monitor.rounds`); each is a `Check` (`sources.py`)."""

from __future__ import annotations

from appliance.monitor import dicom, outbox, services
from appliance.monitor.sources import Check

SOURCES: dict[str, Check] = {
    "services": services.read,
    "dicom": dicom.read,
    "outbox": outbox.read,
}
