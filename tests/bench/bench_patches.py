"""`make bench`: what each pynetdicom patch gains (`appliance/dicom/pynetdicom_patches.py`).

The archive daemon is started with every patch, then with each patch left out in turn (through
`APPLIANCE_BENCH_DISABLED_PATCHES`, a measurement aid), in rounds that go through every variant, so
that a change in the machine's load spreads over all of them: each round starts and ends with every
patch in (the difference between those two is noise), the others in a rotating order. Each start
measures:

- C-GET of a 200-image CT series with DCMTK getscu: time until it has every image;
- association setup: open, C-ECHO, release, with a pynetdicom SCU (50 times);
- C-FIND of 500 study-level matches with a pynetdicom SCU (association open);
- C-MOVE of the series to DCMTK storescp: time until movescu has the final response.

Every DCMTK tool runs with TCP_NODELAY=1. Figures are medians over the rounds, with the load average
printed as it goes. Besides the wall-clock times, the archive's CPU time per operation is printed
(from /proc): other users of the machine lengthen the first much more than the second. Nothing
here asserts: it prints (a retrieve that does not deliver every image is reported as such, not
timed; only a C-FIND that answers the wrong matches stops it).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

import psutil
from bench_archive import fill_index
from datagen import PATIENTS, write_series
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)
from servers import Daemon, archive_config, associate, free_port, wait_for_port, write_config

from appliance.dicom.pynetdicom_patches import MEASUREMENT_ENVIRONMENT, PATCHES, set_no_delay

SERIES_SIZE = int(os.environ.get("BENCH_IMAGES", "200"))
FIND_MATCHES = int(os.environ.get("BENCH_FIND_MATCHES", "500"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
ASSOCIATIONS = 50
FINDS = 2
CLIENT_TIMEOUT_SECONDS = 180
ENVIRONMENT = {**os.environ, "TCP_NODELAY": "1"}
REFERENCE = "all patches"
REPEAT = "all patches, again"  # at the end of each round: the difference between the two is noise
VARIANTS: dict[str, frozenset[str]] = {
    REFERENCE: frozenset(),
    **{f"without {patch}": frozenset({patch}) for patch in PATCHES},
    REPEAT: frozenset(),
}
FIGURES = {
    "get": f"C-GET {SERIES_SIZE} (s)",
    "association": "assoc. setup (ms)",
    "find": f"C-FIND {FIND_MATCHES} (ms)",
    "move": f"C-MOVE {SERIES_SIZE} (s)",
}
MILLISECOND_FIGURES = {"association", "find"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Bench:
    """What every measurement needs: the data, the archive's configuration, the move destination."""

    work: Path
    config_path: Path
    study_uid: str
    destination: Path
    samples: dict[str, dict[str, list[float]]]
    cpu: dict[str, dict[str, list[float]]]
    incomplete: dict[str, list[str]]


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def start_archive(bench: Bench, variant: str) -> Daemon:
    environment = {MEASUREMENT_ENVIRONMENT: ",".join(sorted(VARIANTS[variant]))}
    log = bench.work / f"{variant.replace(' ', '-')}.log"
    return Daemon("appliance.daemons.archive", bench.config_path, log, environment=environment).start()


def client(command: list[str]) -> float:
    """Run a DCMTK client; the seconds it took (its exit status is not checked: the files are counted)."""
    start = time.perf_counter()
    subprocess.run(
        command, env=ENVIRONMENT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=CLIENT_TIMEOUT_SECONDS
    )
    return time.perf_counter() - start


def retrieve_keys(study_uid: str) -> list[str]:
    return ["-S", "-aec", "APPLIANCE", "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}"]


def cpu_seconds(daemon: Daemon) -> float:
    """The CPU time (user and system, every thread) the daemon's process and its serving processes
    have used so far."""
    assert daemon.process is not None
    pids = [daemon.process.pid, *(child.pid for child in psutil.Process(daemon.process.pid).children())]
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


def get_seconds(bench: Bench, port: int) -> list[float]:
    """C-GET of the series with getscu: [seconds], or [] when not every image arrived."""
    output = bench.work / "get"
    output.mkdir()
    seconds = client(["getscu", *retrieve_keys(bench.study_uid), "-od", str(output), "127.0.0.1", str(port)])
    received = len(list(output.iterdir()))
    shutil.rmtree(output)
    return [seconds] if received == SERIES_SIZE else []


def move_seconds(bench: Bench, port: int) -> list[float]:
    """C-MOVE of the series to storescp with movescu: [seconds], or [] when not every image arrived."""
    seconds = client(["movescu", *retrieve_keys(bench.study_uid), "-aem", "STORESCP", "127.0.0.1", str(port)])
    received = list(bench.destination.iterdir())
    for path in received:
        path.unlink()
    return [seconds] if len(received) == SERIES_SIZE else []


def association_milliseconds(_bench: Bench, port: int) -> list[float]:
    """Open an association, C-ECHO, release: `ASSOCIATIONS` times, each in milliseconds."""
    ae = AE(ae_title="ECHOSCU")
    ae.add_requested_context(Verification)
    samples = []
    for _ in range(ASSOCIATIONS):
        start = time.perf_counter()
        association = ae.associate(
            "127.0.0.1", port, ae_title="APPLIANCE", evt_handlers=[(evt.EVT_CONN_OPEN, set_no_delay)]
        )
        status = association.send_c_echo()
        association.release()
        if status.get("Status") != 0:
            raise RuntimeError(f"C-ECHO failed: {status}")
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def find_milliseconds(_bench: Bench, port: int) -> list[float]:
    """C-FIND at STUDY level matching the filler studies (PatientID P...), `FINDS` times, in milliseconds."""
    association = associate(port, StudyRootQueryRetrieveInformationModelFind, ae_title="FINDSCU")
    samples = []
    for _ in range(FINDS):
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.PatientID = "P*"
        query.PatientName = ""
        query.StudyInstanceUID = ""
        query.StudyDate = ""
        start = time.perf_counter()
        answers = list(association.send_c_find(query, StudyRootQueryRetrieveInformationModelFind))
        samples.append((time.perf_counter() - start) * 1000)
        if len(answers) != FIND_MATCHES + 1 or answers[-1][0].Status != 0:
            raise RuntimeError(f"C-FIND: {len(answers) - 1} answers, expected {FIND_MATCHES}")
    association.release()
    return samples


MEASUREMENTS = {
    "get": get_seconds,
    "association": association_milliseconds,
    "find": find_milliseconds,
    "move": move_seconds,
}


def measure(bench: Bench, variant: str) -> None:
    """Start the archive as `variant` says, take the samples of each figure and the archive's CPU time."""
    archive = start_archive(bench, variant)
    try:
        for figure, measurement in MEASUREMENTS.items():
            before = cpu_seconds(archive)
            samples = measurement(bench, archive.port)
            used = cpu_seconds(archive) - before
            if not samples:
                bench.incomplete[variant].append(figure)
                continue
            bench.samples[variant][figure] += samples
            scale = 1000 if figure in MILLISECOND_FIGURES else 1
            bench.cpu[variant][figure].append(used * scale / len(samples))
    finally:
        archive.stop()


def prepare(work: Path, destination_port: int) -> Bench:
    """The series on disk, the index with the filler studies, the series stored in the archive."""
    print(f"Generating a {SERIES_SIZE}-image CT series and {FIND_MATCHES} filler studies...", flush=True)
    series = work / "series"
    paths = write_series(series, SERIES_SIZE, "CT", PATIENTS[0])
    config = archive_config(work / "data", destination_port, lossless={"enabled": False}, logging={"level": "WARNING"})
    config_path = write_config(work / "appliance.yaml", config)
    fill_index(config_path, FIND_MATCHES)
    destination = work / "moved"
    destination.mkdir()
    bench = Bench(
        work,
        config_path,
        str(dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID),
        destination,
        defaultdict(lambda: defaultdict(list)),
        defaultdict(lambda: defaultdict(list)),
        defaultdict(list),
    )
    archive = start_archive(bench, REFERENCE)
    try:
        client(["storescu", "-aec", "APPLIANCE", "+sd", "+r", "127.0.0.1", str(archive.port), str(series)])
    finally:
        archive.stop()
    return bench


def round_order(round_number: int) -> list[str]:
    """Every variant once: all patches first and last, those without one patch in a rotating order."""
    without = [variant for variant in VARIANTS if variant not in (REFERENCE, REPEAT)]
    shift = round_number % len(without)
    return [REFERENCE, *without[shift:], *without[:shift], REPEAT]


def figure_text(values: list[float], reference: list[float], precision: int) -> str:
    if not values:
        return "-"
    median = statistics.median(values)
    change = (median / statistics.median(reference) - 1) * 100
    return f"{median:.{precision}f} ({change:+.0f}%)"


def print_table(title: str, samples: dict[str, dict[str, list[float]]]) -> None:
    """Medians per variant; in brackets, the change from every patch's (both of its runs): + is slower."""
    print(f"\n{title}")
    print(f"  {'variant':<38}" + "".join(f"{heading:>20}" for heading in FIGURES.values()))
    for variant in VARIANTS:
        cells = [
            figure_text(
                samples[variant][figure],
                samples[REFERENCE][figure] + samples[REPEAT][figure],
                1 if figure in MILLISECOND_FIGURES else 2,
            )
            for figure in FIGURES
        ]
        print(f"  {variant:<38}" + "".join(f"{cell:>20}" for cell in cells))


def print_results(bench: Bench) -> None:
    counts = f"{ROUNDS} rounds; association setup: {ASSOCIATIONS} per round; C-FIND: {FINDS} per round"
    print_table(f"Wall-clock medians ({counts}):", bench.samples)
    print_table("The archive's CPU time per operation, medians (same units):", bench.cpu)
    for variant, figures in bench.incomplete.items():
        print(f"  {variant}: incomplete retrieves (not timed): {', '.join(figures)}")


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="appliance-bench-patches-"))
    destination_port = free_port()
    storescp: subprocess.Popen[bytes] | None = None
    try:
        bench = prepare(work, destination_port)
        storescp = subprocess.Popen(
            ["storescp", "-aet", "STORESCP", "-od", str(bench.destination), str(destination_port)],
            env=ENVIRONMENT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(destination_port, "storescp", storescp)
        started = time.perf_counter()
        for round_number in range(1, ROUNDS + 1):
            print(f"round {round_number}/{ROUNDS}, load average {load_average()}", flush=True)
            for variant in round_order(round_number):
                measure(bench, variant)
        print(f"done in {time.perf_counter() - started:.0f} s, load average {load_average()}")
        print_results(bench)
    finally:
        if storescp is not None:
            storescp.terminate()
            storescp.wait()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
