"""What the browser tests share beyond fixtures: the running box they drive."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from servers import Daemon


@dataclass
class Box:
    """The running appliance: its console's address and its daemons."""

    url: str
    data: Path
    config_path: Path
    dicom_port: int
    hl7_port: int
    daemons: list[Daemon]
