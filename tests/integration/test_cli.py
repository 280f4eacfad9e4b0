"""The `appliance` command line as an operator uses it (config check and sample, archive verify, hl7
send), and what the daemons say when they start: the development-mode warning once, a taken port
named with its service."""

from __future__ import annotations

import contextlib
import os
import pty
import queue
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import psutil
import pytest
from datagen import PATIENTS, encoded, make_instance
from servers import Daemon, archive_config, free_port, launcher, read_lines, write_config

from appliance.archive.index import Index
from appliance.archive.ingest import IncomingObject, Ingest, StoreOutcome
from appliance.archive.storage import FileStore
from appliance.cli import main
from appliance.config import development_config
from appliance.daemons.runtime import open_index

REPOSITORY = Path(__file__).parents[2]
SAMPLE_ORDER = REPOSITORY / "tests" / "data" / "samples" / "orm_o01_ct_thorax.hl7"
SAMPLE_ORDER_DATE = "20270115"


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


def archive_with_two_studies(data: Path) -> list[str]:
    """Two one-image studies archived (no daemon needed); their relative paths."""
    config = development_config(data)
    engine = open_index(config)
    ingest = Ingest(FileStore(data, 0), Index(engine))
    for number, patient in enumerate(PATIENTS[:2], start=1):
        dataset = make_instance("CT", patient, study_uid=f"1.2.826.0.1.3680043.10.1471.99.{number}", seed=number)
        dataset.StudyDate = f"2026110{number}"
        incoming = IncomingObject(encoded(dataset), dataset.SOPInstanceUID, dataset.SOPClassUID, "TEST")
        assert ingest.store(incoming).outcome is StoreOutcome.STORED
    engine.dispose()
    return sorted(str(path.relative_to(data / "archive")) for path in (data / "archive").rglob("*.dcm"))


def test_verify_names_the_study_and_the_patient_of_each_damaged_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    first, second = archive_with_two_studies(data)
    (data / "archive" / first).unlink()
    with open(data / "archive" / second, "r+b") as altered:
        altered.seek(-4, 2)
        altered.write(b"\xff\xff\xff\xff")
    assert main(["archive", "verify", "--data", str(data)]) == 1
    output = capsys.readouterr().out
    assert "checked 2 file(s): 1 missing, 1 altered, 0 orphan(s)" in output
    assert f"  missing: {first}  study 1.2.826.0.1.3680043.10.1471.99.1 of 2026-11-01, patient IPP0001" in output
    assert f"  altered: {second}  study 1.2.826.0.1.3680043.10.1471.99.2 of 2026-11-02, patient IPP0002" in output
    assert "2 study(ies) to restore from the backup:" in output
    assert "  2026-11-01  1.2.826.0.1.3680043.10.1471.99.1  patient IPP0001: 1 missing, 0 altered" in output
    assert "ŒUVRARD" not in output and "DUPONT" not in output  # IPP only, no names


@pytest.fixture()
def hl7_daemon(tmp_path: Path) -> Iterator[Daemon]:
    config = archive_config(tmp_path / "data", free_port(), hl7={"bind_address": "127.0.0.1", "port": 0})
    daemon = Daemon("appliance.daemons.hl7", write_config(tmp_path / "appliance.yaml", config), tmp_path / "hl7.log")
    yield daemon.start()
    daemon.stop()


def test_hl7_send_puts_the_sample_order_on_the_development_worklist(hl7_daemon: Daemon, tmp_path: Path) -> None:
    sent = appliance("hl7", "send", str(SAMPLE_ORDER), "--port", str(hl7_daemon.port))
    assert (sent.returncode, sent.stdout) == (0, "AA\n"), sent.stderr
    data = str(tmp_path / "data")
    shown = appliance("worklist", "preview", "--as", "FINDSCU", "--date", SAMPLE_ORDER_DATE, "--data", data)
    assert "1 item(s) for FINDSCU (profile: default)" in shown.stdout  # development: no station filter
    assert "ACC9001" in shown.stdout and "BÉRANGER^Éloïse" in shown.stdout
    production = appliance(
        "worklist", "preview", "--as", "FINDSCU", "--date", SAMPLE_ORDER_DATE, "--config", str(hl7_daemon.config_path)
    )
    assert "0 item(s) for FINDSCU" in production.stdout  # the order has no station; FINDSCU is none


def test_hl7_send_says_when_nobody_listens(tmp_path: Path) -> None:
    result = appliance("hl7", "send", str(SAMPLE_ORDER), "--port", str(free_port()))
    assert result.returncode == 2
    assert result.stderr.startswith(f"cannot send {SAMPLE_ORDER} to 127.0.0.1:")


@pytest.mark.parametrize(
    ("module", "section", "line"),
    [
        ("appliance.daemons.archive", "dicom", "ERROR appliance.daemons.dicom_server: DICOM archive APPLIANCE"),
        ("appliance.daemons.worklist", "worklist", "ERROR appliance.daemons.dicom_server: worklist APPLIANCE_MWL"),
        ("appliance.daemons.hl7", "hl7", "ERROR appliance.daemons.hl7: HL7 listener"),
    ],
)
def test_a_daemon_on_a_taken_port_names_its_service_address_and_port(
    tmp_path: Path, module: str, section: str, line: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        listener = {"bind_address": "127.0.0.1", "port": port}
        config_path = write_config(
            tmp_path / "appliance.yaml", archive_config(tmp_path / "data", 1, **{section: listener})
        )
        result = subprocess.run(
            [sys.executable, "-c", launcher(module), "--config", str(config_path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1
    assert f"{line} cannot listen on 127.0.0.1:{port}: Address already in use\n" in result.stderr


class Supervisor:
    """`make run` in a process of its own, its lines read by a thread: every wait has a deadline, and a
    wait that runs out says what was printed and where each process of the appliance is stuck: its
    threads' kernel waits, and their Python stacks (Python's fault handler, on in every process
    of the appliance here, writes them on SIGABRT)."""

    def __init__(self, config_path: Path, **options: Any) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "appliance.daemons.supervisor", "--config", str(config_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONFAULTHANDLER": "1"},
            **options,
        )
        self.lines = read_lines(self.process)
        self.output: list[str] = []
        self.seen: dict[int, psutil.Process] = {}
        self.ended = False  # the output's end has been read

    def until(self, printed: Callable[[list[str]], bool], seconds: float = 120) -> None:
        """Read until `printed(lines so far)`; fail (the appliance killed) at the end of the output or
        after `seconds`."""
        deadline = time.monotonic() + seconds
        while not printed(self.output):
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.fail(f"nothing more within {seconds:.0f} s")
            if not line:
                self.ended = True
                self.fail("the output ended")
            self.output.append(line)
            self.family()

    def fail(self, why: str) -> NoReturn:
        family = self.family()
        report = "\n".join(stuck_report(member) for member in family)
        for member in family:  # one at a time, so that their stacks do not mix in the output
            with contextlib.suppress(psutil.NoSuchProcess):
                member.send_signal(signal.SIGABRT)
            psutil.wait_procs([member], timeout=5)
        for member in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()
        psutil.wait_procs(family, timeout=15)
        self.drain(15)
        pytest.fail(f"{''.join(self.output)}--- {why}; the processes then:\n{report}")

    def family(self) -> list[psutil.Process]:
        """The supervisor and every process under it, those seen before included (a process whose
        parent has ended is no longer found under it)."""
        with contextlib.suppress(psutil.NoSuchProcess):
            supervisor = psutil.Process(self.process.pid)
            for member in [supervisor, *supervisor.children(recursive=True)]:
                self.seen.setdefault(member.pid, member)
        return [member for member in self.seen.values() if member.is_running()]

    def rest(self, seconds: float = 120) -> str:
        """Everything printed, once the supervisor has ended (within `seconds`) and the pipe closed."""
        self.family()
        try:
            self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.fail(f"not ended {seconds:.0f} s after the stop")
        if not self.drain(seconds):
            self.fail("the supervisor ended, but a process it started still holds its output open")
        return "".join(self.output)

    def drain(self, seconds: float) -> bool:
        """Take the lines still coming until the output ends (True), `seconds` at most."""
        deadline = time.monotonic() + seconds
        while not self.ended:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return False
            self.ended = not line
            self.output.append(line)
        return True


def stuck_report(process: psutil.Process) -> str:
    """A process's command, state, and where in the kernel each of its threads waits (`wchan`), so
    that a hang in CI says which daemon and on what."""
    try:
        waits = sorted(Path(f"/proc/{process.pid}/task/{thread.id}/wchan").read_text() for thread in process.threads())
        return f"{process.pid} {process.status()} {' '.join(process.cmdline())[-120:]}: threads waiting in {waits}"
    except (psutil.Error, OSError) as error:
        return f"{process.pid}: {error}"


def supervisor_output(config_path: Path) -> str:
    """What `make run` prints from its start until every daemon is up, then Ctrl-C."""
    supervisor = Supervisor(config_path)
    supervisor.until(lambda lines: sum("listening on" in line or "worker running" in line for line in lines) >= 5)
    supervisor.process.send_signal(signal.SIGINT)
    return supervisor.rest()


def test_make_run_warns_once_about_development_mode_and_prints_the_console_address(tmp_path: Path) -> None:
    web_port = free_port()
    listeners: dict[str, Any] = {"bind_address": "127.0.0.1", "port": 0}
    config = {
        "mode": "development",
        "storage": {"data_directory": str(tmp_path / "data"), "minimum_free_space_mb": 1},
        **{section: listeners for section in ("dicom", "worklist", "hl7")},
        "web": {"bind_address": "127.0.0.1", "port": web_port},
    }
    output = supervisor_output(write_config(tmp_path / "appliance.yaml", config))
    assert output.count("development mode: any AE title from 127.0.0.1 is accepted") == 1, output
    assert f"  console        http://127.0.0.1:{web_port}/\n" in output, output
    assert f"console listening on 127.0.0.1:{web_port}" in output, output


def test_make_run_waits_for_its_listeners_without_a_refusal_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    """The supervisor asks each listener as the monitor does (C-ECHO, NMQ^N01), so nothing logs a
    refused connection at start; Ctrl-C (SIGINT to the whole process group, then the supervisor's
    SIGTERM to each daemon) stops everything."""
    config = {
        "mode": "development",
        "storage": {"data_directory": str(tmp_path / "data"), "minimum_free_space_mb": 1},
        **{section: {"bind_address": "127.0.0.1", "port": free_port()} for section in ("dicom", "worklist", "hl7")},
        "web": {"bind_address": "127.0.0.1", "port": free_port()},
    }
    supervisor = Supervisor(write_config(tmp_path / "appliance.yaml", config), start_new_session=True)
    supervisor.until(lambda lines: any("health monitor running" in line for line in lines))
    os.killpg(supervisor.process.pid, signal.SIGINT)
    output = supervisor.rest()
    process = supervisor.process
    assert process.returncode == 0, output
    assert "refused" not in output and "NMQ" not in output, output
    assert "DICOM archive APPLIANCE stopped" in output and "background worker stopped" in output, output


def read_until(terminal: int, text: str, seconds: float = 120) -> str:
    """What a program writes to its terminal (the pty's master end `terminal`) until `text`."""
    output = b""
    deadline = time.monotonic() + seconds
    while text.encode() not in output:
        remaining = deadline - time.monotonic()
        assert remaining > 0 and select.select([terminal], [], [], remaining)[0], output.decode(errors="replace")
        output += os.read(terminal, 65536)
    return output.decode(errors="replace")


def test_make_run_reloads_on_kill_hup_and_stops_everything_when_its_terminal_closes(tmp_path: Path) -> None:
    """`make run` typed in a terminal: `kill -HUP` reloads every daemon; closing the terminal window
    (the kernel's SIGHUP, the terminal gone) stops them all, as Ctrl-C does. They run in process
    groups of their own, which the hangup does not reach: they used to stay up, orphaned."""
    config = {
        "mode": "development",
        "storage": {"data_directory": str(tmp_path / "data"), "minimum_free_space_mb": 1},
        **{section: {"bind_address": "127.0.0.1", "port": free_port()} for section in ("dicom", "worklist", "hl7")},
        "web": {"bind_address": "127.0.0.1", "port": free_port()},
    }
    config_path = write_config(tmp_path / "appliance.yaml", config)
    command = [sys.executable, "-m", "appliance.daemons.supervisor", "--config", str(config_path)]
    pid, terminal = pty.fork()
    if pid == 0:  # the child, in a session whose terminal is the pty
        try:
            os.execv(command[0], command)
        finally:
            os._exit(127)
    supervisor = psutil.Process(pid)
    family = [supervisor]
    try:
        read_until(terminal, "health monitor running")
        family += supervisor.children(recursive=True)
        assert len(family) >= 8
        os.kill(pid, signal.SIGHUP)
        read_until(terminal, "configuration reloaded")
        assert all(process.is_running() for process in family)
    finally:
        os.close(terminal)  # the terminal window closes
    gone, alive = psutil.wait_procs(family, timeout=120)
    for process in alive:  # left running, they would outlive the test
        process.kill()
    assert alive == [] and [process.returncode for process in gone if process.pid == pid] == [0]


def test_version_is_the_package_s() -> None:
    from importlib.metadata import version

    shown = appliance("--version")
    assert shown.returncode == 0 and shown.stdout.strip() == f"appliance {version('appliance')}"


def test_a_folder_without_an_archive_is_refused_not_created(tmp_path: Path) -> None:
    empty = tmp_path / "nothing-here"
    refused = appliance("archive", "stats", "--data", str(empty))
    assert refused.returncode == 2
    assert f"archive in {empty} (" in refused.stderr and f"{empty} holds no archive" in refused.stderr
    assert not empty.exists()
    created = appliance("db", "upgrade", "--data", str(empty))
    assert created.returncode == 0 and (empty / "index" / "appliance.sqlite").is_file()
    listed = appliance("archive", "stats", "--data", str(empty))
    assert listed.returncode == 0 and "instances           0" in listed.stdout
