"""The nightly backup and the proven restores (B1, B2): borgmatic driving borg 1.4.

`snapshot` copies the SQLite index and audit trail consistently into a staging folder, `borgmatic`
writes the borgmatic configuration from the appliance's and runs it, `targets` knows the off-site
repository and the rotating USB disks, `nightly` runs one backup to every target, `history` keeps
each run's and each drill's result for the console and the monitor, `restore` brings back the index
or studies' files, `drill` is the monthly restore drill. Putting restored studies back into the
live archive goes through the normal ingest, which is the domain's: the command line does it
(`appliance/backup_cli.py`). See README.md.
"""


class BackupError(Exception):
    """A backup, restore or drill step failed; `reason` says it in French for the practice, the
    message (`detail`) is for the contractor (the command, borg's last lines)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason} {detail}".strip())
