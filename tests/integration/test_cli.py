"""The `appliance` command line as an operator uses it (config check and sample, archive verify, hl7
send), and what the daemons say when they start: the development-mode warning once, a taken port
named with its service."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from servers import write_config


def appliance(*arguments: str) -> subprocess.CompletedProcess[str]:
    """`appliance ARGUMENTS` in a process of its own, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", *arguments], capture_output=True, text=True, timeout=120
    )


def test_config_check_reports_every_problem_of_both_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    main_file = write_config(tmp_path / "appliance.yaml", {"storage": {"data_directory": str(data)}, "dicom": {}})
    main_file.write_text(main_file.read_text() + "peers: [{ae_title: CT1, host: scanner salle 1}]\n")
    console = data / "settings" / "console.yaml"
    console.parent.mkdir(parents=True)
    console.write_text("worklist: {ae_title: '', port: 104}\n")
    result = appliance("config", "check", str(main_file))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{main_file}: peers[0].host: 'scanner salle 1' is neither an IP address nor a valid host name",
        f"{console}: worklist.ae_title: AE title may not be empty or only spaces",
        f"{console}: worklist.port: port 104 is also dicom.port, on overlapping addresses "
        "(dicom.bind_address 0.0.0.0, worklist.bind_address 0.0.0.0)",
    ]
    console.write_text("worklist: {port: 11113}\n")
    main_file.write_text(main_file.read_text().replace("scanner salle 1", "10.0.0.1"))
    assert appliance("config", "check", str(main_file)).stdout.splitlines() == [
        f"{main_file}: valid (production, 1 peer(s))",
        f"{console}: valid, console settings merged over {main_file}",
    ]


def test_config_sample_is_the_defaults(tmp_path: Path) -> None:
    sample = tmp_path / "appliance.yaml"
    sample.write_text(appliance("config", "sample").stdout)
    assert appliance("config", "check", str(sample)).stdout.startswith(f"{sample}: valid (production, 0 peer(s))\n")
