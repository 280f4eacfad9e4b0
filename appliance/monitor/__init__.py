"""Health of the box: each source (outbox today; RAID, SMART, UPS, disks, services next) is a plugin
whose `check` returns `Finding`s; alerts, the console and the quality-control report read the same
findings."""

from appliance.monitor.findings import Finding, Severity

__all__ = ["Finding", "Severity"]
