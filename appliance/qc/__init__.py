"""The daily quality-control report (Q1, the "procédure interne de contrôle qualité" the practice's
specification asks for): what the box checked today, dated, kept for the archive's lifetime, shown
in the console, handed to an inspector as a PDF, and signed off by the responsible radiologist.

`report` is the report's shape (sections, statuses, JSON facts), `fixity` the rolling re-reading of
image files against their SHA-256, `compression` the lossless compression counts, `backups` the
backup and drill results, `health` what the monitor recorded (RAID, SMART, UPS, services, the
worklist, free space), `build` puts a day's report together, `store` keeps it (table `qc_report`),
`render` makes its HTML, PDF and mail, `daily` is the run of each day. See README.md.

Platform (rank 0): the index is read through `appliance.db.schema` and the monitor's store, never
the domain. The one check that belongs to the domain, the audit trail's chain, is handed in as a
function by the caller (`appliance qc run`, the worker's job), which may import `appliance.audit`.
"""
