"""Every source of the monitor by name, in the order the dashboard and `appliance health` list them.
`appliance-monitor` runs each of them every round (`appliance.monitor.rounds`); each is a `Check`
(`read(context) -> Reading`, see `sources`); its name is the findings' source."""

from __future__ import annotations

from appliance.monitor import (
    backup,
    certificate,
    clock,
    dicom,
    disk,
    events,
    outbox,
    qc,
    raid,
    services,
    smart,
    tunnel,
    ups,
)
from appliance.monitor.sources import Check

SOURCES: dict[str, Check] = {
    "disk": disk.read,
    "raid": raid.read,
    "smart": smart.read,
    "ups": ups.read,
    "services": services.read,
    "dicom": dicom.read,
    "outbox": outbox.read,
    "time": clock.read,
    "certificate": certificate.read,
    "events": events.read,
    "backup": backup.read,
    "tunnel": tunnel.read,
    "qc": qc.read,
}
