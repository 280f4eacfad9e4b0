"""Health of the box (H1-H3, H5): each source (RAID, SMART, UPS, disks, services, DICOM, time,
certificate, outbox, the events of the system tools' hooks) is a plugin whose `check` returns a
`Reading` of `Finding`s; `store` keeps the current state, the changes and the measures in the index;
`appliance-monitor` runs the checks and mails the changes; the console and the quality-control
report read the stored findings."""

from appliance.monitor.findings import Finding, Measure, Reading, Severity, worst

__all__ = ["Finding", "Measure", "Reading", "Severity", "worst"]
