"""`make bench`: the archive side by side with the reference archive (issue 14's benchmark).

The reference is Orthanc from the Debian package, started here on 127.0.0.1 with a temporary
configuration (`tests/orthanc.py`: Nagle off, never the system service); ours is the archive daemon
as `bench_archive.py` starts it. Both get the same data from the same DCMTK tools (storescu, getscu,
movescu to a storescp, findscu; TCP_NODELAY=1), one after the other in the same sitting:

- ingest of a `SERIES_SIZE`-image CT series over 1 and over 4 associations, and of `SMALL_STUDIES`
  small studies (2 images of 128x128 each) over one association, each into an empty archive;
- C-GET and C-MOVE of that series, first image and whole series, to a peer that accepts JPEG-LS
  (`+xt`) and to one that accepts only uncompressed syntaxes, before and after the study is
  compressed: ours by its own verified compression to JPEG-LS (`appliance archive compress --all`,
  what the worker does in the background), the reference by storing those same JPEG-LS files
  (through its REST API), which it then sends as stored or decodes (its built-in DCMTK transcoder);
- C-GET and C-MOVE of the uncompressed series to DCMTK peers as DCMTK comes, without TCP_NODELAY
  in their environment: Nagle's algorithm on, so their short messages wait for the archive's
  acknowledgement (the other figures set TCP_NODELAY=1 for every tool, as the archives do);
- C-FIND of a study by Patient ID with `FIND_STUDIES` studies in the index (ours: index rows of
  the same small files; the reference: the files stored), on an open association (findscu
  `--repeat`: the time of n+1 queries less that of one, divided by n, so no process start counts);
- the worklist answer with 1,000 scheduled steps (target 20 ms; the same findscu way): the
  reference is Orthanc's ModalityWorklists plugin (in the Debian package), which answers from a
  folder of worklist files: it gets our 1,000 answers as files, and both are asked for today's steps
  of one station with the station and the date given (the plugin has no profiles to default them).

Under the table: the CPU time each archive's processes spent per image stored (ours: the daemon
and its serving processes; on two cores, four associations are bound by it); how many sync system
calls each archive makes per image stored (strace attached to it during a 50-image storescu; needs
the right to trace, i.e. root here), and what each one made durable, by the file it names: what
the acknowledgement waits for on disk. Before each success status (A3), ours makes the file and
its folders durable (one syncfs for the objects arriving together, each file's write-back then
checked for errors) and syncs the index's write-ahead log.
The reference (measured here, Orthanc 1.10) syncs the stored file's bytes only: neither its new
folders nor, but for a few checkpoints, its index, so a power cut can lose images it acknowledged.
A difference there is a difference in durability, not in speed.

Each figure is the median of `RUNS` runs. One table: ours, reference, ratio ours / reference, and
MISSED where the ratio is above 1.0 (or the worklist at 20 ms or more). Nothing here asserts beyond
the files being all there: it prints. About 5 minutes on 2 cores with the defaults.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))
sys.path.insert(0, str(Path(__file__).parent))

import psutil
from bench_archive import ENVIRONMENT, first_file_watch, start_archive, timed
from bench_worklist import STATIONS, STEPS, query_seconds, worklist_daemon, worklist_query
from datagen import PATIENTS, Patient, encoded, make_instance, write_series
from orthanc import Orthanc, available
from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pydicom.uid import JPEGLSLossless, generate_uid
from servers import Daemon, cli, free_port, wait_for_port

from appliance.archive.attributes import read_attributes
from appliance.archive.index import Index
from appliance.archive.storage import WrittenFile
from appliance.config import load_config
from appliance.db import create_index_engine, upgrade_schema

SERIES_SIZE = int(os.environ.get("BENCH_IMAGES", "200"))
SMALL_STUDIES = 200
FIND_STUDIES = int(os.environ.get("BENCH_STUDIES", "10000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
WORKLIST_TARGET_MS = 20.0
OURS, REFERENCE = "APPLIANCE", "ORTHANC"
# The AE titles the reference must know to answer them (ours knows them from `archive_config`).
CLIENTS = ("STORESCU", "FINDSCU", "GETSCU", "MOVESCU", "CT_SALLE1")
# DCMTK as it comes: without TCP_NODELAY in its environment it leaves Nagle's algorithm on.
NAGLE_ON = {name: value for name, value in ENVIRONMENT.items() if name != "TCP_NODELAY"}
WORKLIST_PLUGIN = "/usr/share/orthanc/plugins/libModalityWorklists.so"  # Debian's orthanc package


@dataclass
class Figure:
    """One line of the table: samples of each side (seconds), and the figure's target if any."""

    name: str
    unit: str = "s"
    ours: list[float] = field(default_factory=list)
    reference: list[float] = field(default_factory=list)
    target: float | None = None  # an absolute target for ours (worklist), in `unit`


FIGURES: dict[str, Figure] = {}
NOTES: list[str] = []


def note(name: str, side: str, seconds: float, unit: str = "s", target: float | None = None) -> None:
    figure = FIGURES.setdefault(name, Figure(name, unit, target=target))
    value = seconds * 1000 if unit == "ms" else seconds
    (figure.ours if side == OURS else figure.reference).append(value)
    print(f"    {side:<10} {name:<58} {value:9.3f} {unit}", flush=True)


@dataclass(frozen=True)
class Archive:
    """An archive under test: where it listens and the AE title it answers to."""

    side: str
    port: int
    config_path: Path | None = None  # ours only
    daemon: Daemon | None = None  # ours only
    orthanc: Orthanc | None = None  # the reference only


@contextmanager
def empty_archive(side: str, work: Path, name: str, destination_port: int) -> Iterator[Archive]:
    """An archive of `side` with nothing stored, stopped (by PID) on leaving."""
    if side == OURS:
        daemon = start_archive(work, name, destination_port)
        try:
            yield Archive(OURS, daemon.port, config_path=daemon.config_path, daemon=daemon)
        finally:
            daemon.stop()
        return
    known = {title: (title, 104) for title in CLIENTS}
    known["STORESCP"] = ("STORESCP", destination_port)
    with Orthanc(work / name, modalities=known) as orthanc:
        yield Archive(REFERENCE, orthanc.dicom_port, orthanc=orthanc)


def store(archive: Archive, *paths: Path) -> float:
    """storescu of `paths` (files or folders) over one association; seconds."""
    return timed(["storescu", "-aec", archive.side, "+sd", "+r", "127.0.0.1", str(archive.port), *map(str, paths)])


def store_in_parallel(archive: Archive, groups: list[Path]) -> float:
    """One storescu per folder of `groups`, all at once; seconds until the last one is done."""
    start = time.perf_counter()
    processes = [
        subprocess.Popen(
            ["storescu", "-aec", archive.side, "+sd", "127.0.0.1", str(archive.port), str(group)],
            env=ENVIRONMENT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for group in groups
    ]  # fmt: skip
    codes = [process.wait() for process in processes]
    seconds = time.perf_counter() - start
    assert codes == [0] * len(groups), f"storescu failed: {codes}"
    return seconds


def bench_ingest(work: Path, data: Data, destination_port: int) -> None:
    one, four, small = (
        f"ingest {SERIES_SIZE} CT images, 1 association",
        f"ingest {SERIES_SIZE} CT images, 4 associations",
        f"ingest {SMALL_STUDIES} small studies, 1 association",
    )
    for run in range(RUNS):
        print(f"  ingest, run {run + 1} of {RUNS}", flush=True)
        for side in (OURS, REFERENCE) if run % 2 == 0 else (REFERENCE, OURS):  # neither always first
            with empty_archive(side, work, f"{side}-one-{run}", destination_port) as archive:
                note(one, side, with_cpu(archive, one, SERIES_SIZE, lambda: store(archive, data.series)))
            with empty_archive(side, work, f"{side}-four-{run}", destination_port) as archive:
                note(four, side, with_cpu(archive, four, SERIES_SIZE, lambda: store_in_parallel(archive, data.groups)))
            with empty_archive(side, work, f"{side}-small-{run}", destination_port) as archive:
                note(small, side, with_cpu(archive, small, 2 * SMALL_STUDIES, lambda: store(archive, data.small)))
    for figure in (one, four, small):
        ours, reference = (statistics.median(CPU_PER_IMAGE[figure, side]) for side in (OURS, REFERENCE))
        NOTES.append(
            f"{figure}: CPU time of the archive's processes per image (user and system, median):"
            f" ours {ours * 1000:.2f} ms, the reference {reference * 1000:.2f} ms"
        )


CPU_PER_IMAGE: dict[tuple[str, str], list[float]] = {}


def with_cpu(archive: Archive, figure: str, images: int, run: Callable[[], float]) -> float:
    """`run()` (a timed ingest of `images` images), noting the CPU time the archive's processes
    spent per image meanwhile (`CPU_PER_IMAGE`): on two cores, four associations are bound by it."""
    processes = [psutil.Process(pid) for pid in archive_pids(archive)]
    before = sum(cpu_seconds(process) for process in processes)
    seconds = run()
    spent = sum(cpu_seconds(process) for process in processes) - before
    CPU_PER_IMAGE.setdefault((figure, archive.side), []).append(spent / images)
    return seconds


def cpu_seconds(process: psutil.Process) -> float:
    """User and system CPU time of `process`, every thread of it."""
    times = process.cpu_times()
    return float(times.user + times.system)


SYNC_CALLS = "fsync,fdatasync,syncfs,sync,msync"  # what waits until data is on the disk
WRITE_BACK_CALLS = "sync_file_range"  # ours: write-back started early (storage.stage), errors read after syncfs
SYNC_SAMPLE = 50  # images stored under strace: enough to see the per-image count


def syncs_per_image(work: Path, data: Data, destination_port: int) -> None:
    """How many sync system calls each archive makes per image stored (strace attached to it while
    storescu sends `SYNC_SAMPLE` images over one association), and what each one makes durable (the
    file it names: the stored file, a folder, the index; `syncfs`: the whole file system): what each
    acknowledgement waits for on disk. Printed under the table; not a timed figure (strace slows
    both). Skipped, saying why, where strace is missing or may not attach (not root)."""
    sample = work / "sample"
    sample.mkdir()
    for path in sorted(data.series.iterdir())[:SYNC_SAMPLE]:
        os.link(path, sample / path.name)
    for side in (OURS, REFERENCE):
        with empty_archive(side, work, f"{side}-syncs", destination_port) as archive:
            traced = traced_syncs(archive_pids(archive), lambda: store(archive, sample), work / f"{side}.strace")
        if traced is None:
            NOTES.append(f"{side}: sync calls while storing: not measured (strace cannot attach)")
            continue
        syncs = [(call, path) for call, path in traced if call in SYNC_CALLS.split(",")]
        starts = len(traced) - len(syncs)
        kinds = Counter(synced_kind(call, path) for call, path in syncs)
        made_durable = ", ".join(f"{kind} {number / SYNC_SAMPLE:.2f}" for kind, number in sorted(kinds.items()))
        per_image = len(syncs) / SYNC_SAMPLE
        NOTES.append(
            f"{side}: sync calls ({SYNC_CALLS.replace(',', ', ')}) while storing: {per_image:.2f} per image"
            f" ({made_durable or 'none'}); write-back started early or its errors read ({WRITE_BACK_CALLS}, no wait"
            f" for the disk): {starts / SYNC_SAMPLE:.2f} per image"
        )


def synced_kind(call: str, path: str) -> str:
    """What a sync call made durable, by the file it names (strace -y)."""
    if call == "syncfs":
        return "the file system (files, folders, index)"
    if "/audit/" in path:
        return "the audit trail"
    if path.endswith(INDEX_FILES):
        return "the index"
    if Path(path).is_dir():
        return "a folder"
    return "a stored file"


INDEX_FILES = (".sqlite", ".sqlite-wal", "/index", "/index-wal", "/index-journal")  # ours, the reference's


def traced_syncs(pids: list[int], run: Callable[[], object], output: Path) -> list[tuple[str, str]] | None:
    """The sync and write-back system calls processes `pids` (all their threads) make during
    `run()`: (call, the path of the file it names, '' for none); None when strace cannot attach."""
    if shutil.which("strace") is None:
        return None
    attach = [argument for pid in pids for argument in ("-p", str(pid))]
    tracer = subprocess.Popen(
        ["strace", "-f", "-y", "-e", f"trace={SYNC_CALLS},{WRITE_BACK_CALLS}", "-o", str(output), *attach],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert tracer.stderr is not None
    attached = tracer.stderr.readline()  # "strace: Process N attached ..." once it traces
    if "attached" not in attached:
        tracer.wait()
        return None
    try:
        run()
    finally:
        tracer.send_signal(signal.SIGINT)  # detaches
        tracer.wait()
    return [(found["call"], found["path"] or "") for found in SYSCALL_LINE.finditer(output.read_text())]


# "1234  fdatasync(8</srv/x/index-wal>) = 0": the call and the path strace -y names for its descriptor
SYSCALL_LINE = re.compile(r"^\d+\s+(?P<call>\w+)\((?:\d+(?:<(?P<path>[^>]*)>)?)?", re.MULTILINE)


def archive_pids(archive: Archive) -> list[int]:
    """The archive's process and its children (ours: the serving processes, which store)."""
    if archive.orthanc is not None:
        assert archive.orthanc.process is not None
        pid = archive.orthanc.process.pid
    else:
        assert archive.daemon is not None and archive.daemon.process is not None
        pid = archive.daemon.process.pid
    return [pid, *(child.pid for child in psutil.Process(pid).children())]


def get(
    archive: Archive, study_uid: str, output: Path, jpeg_ls: bool, environment: dict[str, str] = ENVIRONMENT
) -> tuple[float, float]:
    accepted = ["+xt"] if jpeg_ls else []
    output.mkdir(parents=True)
    return retrieve(
        ["getscu", "-S", "-aec", archive.side, *accepted, "-od", str(output), "-k", "QueryRetrieveLevel=STUDY",
         "-k", f"StudyInstanceUID={study_uid}", "127.0.0.1", str(archive.port)],
        output, environment,
    )  # fmt: skip


def move(
    archive: Archive,
    study_uid: str,
    output: Path,
    jpeg_ls: bool,
    destination_port: int,
    environment: dict[str, str] = ENVIRONMENT,
) -> tuple[float, float]:
    accepted = ["+xt"] if jpeg_ls else []
    output.mkdir(parents=True)
    destination = subprocess.Popen(
        ["storescp", "-aet", "STORESCP", *accepted, "-od", str(output), str(destination_port)],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(destination_port, "storescp", destination)
        return retrieve(
            ["movescu", "-S", "-aec", archive.side, "-aem", "STORESCP", "-k", "QueryRetrieveLevel=STUDY",
             "-k", f"StudyInstanceUID={study_uid}", "127.0.0.1", str(archive.port)],
            output, environment,
        )  # fmt: skip
    finally:
        destination.terminate()
        destination.wait()


def retrieve(command: list[str], output: Path, environment: dict[str, str]) -> tuple[float, float]:
    """Run a retrieve whose files land in the empty folder `output`: (first file, all) in
    seconds; all must arrive."""
    watcher, seen = first_file_watch(output)
    start = time.perf_counter()
    total = timed(command, environment)
    watcher.join()
    count = len(list(output.iterdir()))
    assert count == SERIES_SIZE, f"{count} of {SERIES_SIZE} files arrived: {' '.join(command)}"
    return seen[0] - start, total


def bench_retrieves(archive: Archive, study_uid: str, work: Path, stored: str, destination_port: int) -> None:
    """C-GET and C-MOVE, each to a JPEG-LS peer and to an uncompressed-only one, `RUNS` times."""
    for run in range(RUNS):
        for jpeg_ls in (True, False):
            peer = "JPEG-LS peer" if jpeg_ls else "uncompressed peer"
            output = work / f"{archive.side}-{stored}-{run}-{jpeg_ls}"
            first, total = get(archive, study_uid, output / "get", jpeg_ls)
            note(f"C-GET {stored}, {peer}: first image", archive.side, first)
            note(f"C-GET {stored}, {peer}: all {SERIES_SIZE}", archive.side, total)
            first, total = move(archive, study_uid, output / "move", jpeg_ls, destination_port)
            note(f"C-MOVE {stored}, {peer}: first image", archive.side, first)
            note(f"C-MOVE {stored}, {peer}: all {SERIES_SIZE}", archive.side, total)
            if jpeg_ls and stored == "compressed" and run == 0:
                check_syntax(output / "get", f"{archive.side} (C-GET)")
                check_syntax(output / "move", f"{archive.side} (C-MOVE)")
            shutil.rmtree(output)
        if stored == "uncompressed":
            bench_nagle_peers(archive, study_uid, work / f"{archive.side}-nagle-{run}", destination_port)


def bench_nagle_peers(archive: Archive, study_uid: str, output: Path, destination_port: int) -> None:
    """C-GET and C-MOVE to DCMTK peers left as they come (Nagle's algorithm on: no TCP_NODELAY)."""
    peer = "peer with Nagle on"
    _first, total = get(archive, study_uid, output / "get", False, NAGLE_ON)
    note(f"C-GET uncompressed, {peer}: all {SERIES_SIZE}", archive.side, total)
    _first, total = move(archive, study_uid, output / "move", False, destination_port, NAGLE_ON)
    note(f"C-MOVE uncompressed, {peer}: all {SERIES_SIZE}", archive.side, total)
    shutil.rmtree(output)


def check_syntax(folder: Path, side: str) -> None:
    """Say so when a JPEG-LS peer did not get the compressed study as JPEG-LS."""
    syntax = dcmread(next(folder.iterdir()), stop_before_pixels=True).file_meta.TransferSyntaxUID
    print(f"    note: {side} sent the compressed study to the JPEG-LS peer as {syntax.name}", flush=True)
    NOTES.append(f"{side} sent the compressed study to the JPEG-LS peer as {syntax.name}")


def compressed_files(config_path: Path) -> list[Path]:
    """The files of our archive stored as JPEG-LS (after `archive compress`)."""
    data = Path(load_config(config_path).storage.data_directory)
    found = []
    for path in data.rglob("*"):
        if path.is_file() and path.suffix not in (".sqlite", ".sqlite-wal", ".sqlite-shm", ".lock"):
            try:
                meta = dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).file_meta
            except (InvalidDicomError, OSError):  # the index, the audit trail: not images
                continue
            if meta.TransferSyntaxUID == JPEGLSLossless:
                found.append(path)
    return found


def bench_retrieve(work: Path, data: Data, destination_port: int) -> None:
    """Both archives, before and after compression; the reference gets our JPEG-LS files."""
    print("  retrieve, as received (uncompressed)", flush=True)
    with empty_archive(OURS, work, "ours-retrieve", destination_port) as ours:
        store(ours, data.series)
        bench_retrieves(ours, data.study_uid, work, "uncompressed", destination_port)
        assert ours.config_path is not None
        start = time.perf_counter()
        cli(ours.config_path, "archive", "compress", "--all")
        NOTES.append(f"ours compressed the study to JPEG-LS (verified) in {time.perf_counter() - start:.1f} s")
        jpeg_ls = compressed_files(ours.config_path)
        assert len(jpeg_ls) == SERIES_SIZE, f"{len(jpeg_ls)} of {SERIES_SIZE} files compressed"
        print("  retrieve, compressed (JPEG-LS)", flush=True)
        bench_retrieves(ours, data.study_uid, work, "compressed", destination_port)
    with empty_archive(REFERENCE, work, "reference-retrieve", destination_port) as reference:
        store(reference, data.series)
        bench_retrieves(reference, data.study_uid, work, "uncompressed", destination_port)
    with empty_archive(REFERENCE, work, "reference-compressed", destination_port) as reference:
        assert reference.orthanc is not None
        for path in jpeg_ls:
            reference.orthanc.upload(path)
        bench_retrieves(reference, data.study_uid, work, "compressed", destination_port)


def study_query(archive: Archive) -> list[str]:
    keys = ["QueryRetrieveLevel=STUDY", "PatientID=P0000042", "StudyInstanceUID", "PatientName", "StudyDate"]
    return [
        "findscu",
        "-S",
        "-aec",
        archive.side,
        *[part for key in keys for part in ("-k", key)],
        "127.0.0.1",
        str(archive.port),
    ]


def write_small_studies(folder: Path, count: int, patients: Callable[[int], Patient], rows: int, images: int) -> None:
    """`count` studies of one patient each, `images` images of `rows` x `rows` (16-bit, blank),
    made from one generated CT image (generating the pixels of each would take minutes)."""
    folder.mkdir(parents=True)
    template = make_instance("CT", patients(0))
    template.Rows = template.Columns = rows
    template.PixelData = bytes(rows * rows * 2)
    for number in range(count):
        patient = patients(number)
        template.SpecificCharacterSet = patient.character_set
        template.PatientID, template.PatientName = patient.patient_id, patient.name
        template.PatientBirthDate, template.PatientSex = patient.birth_date, patient.sex
        template.StudyInstanceUID, template.SeriesInstanceUID = generate_uid(), generate_uid()
        template.AccessionNumber = f"A{number:07d}"
        template.StudyDate = f"20{10 + number % 16:02d}{1 + number % 12:02d}{1 + number % 28:02d}"
        for instance in range(1, images + 1):
            template.InstanceNumber = instance
            template.SOPInstanceUID = template.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            (folder / f"{number:06d}-{instance}.dcm").write_bytes(encoded(template))


def filler_patient(number: int) -> Patient:
    surnames = ["MARTIN", "BERNARD", "THOMAS", "PETIT", "ROBERT", "RICHARD", "DURAND", "DUBOIS", "MOREAU", "LAURENT"]
    return Patient(f"P{number // 3:07d}", f"{surnames[number % 10]}{number // 10}^Prénom", "19700101", "F",
                   "ISO_IR 192")  # fmt: skip


def index_files(config_path: Path, folder: Path) -> None:
    """Index rows for the files of `folder`, as ingest would write them (the files are not copied:
    only the query is measured)."""
    config = load_config(config_path)
    engine = create_index_engine(config.database_url)
    upgrade_schema(engine, config.storage.index_directory)
    index = Index(engine)
    for number, path in enumerate(sorted(folder.iterdir())):
        index.add_instance(
            read_attributes(path.read_bytes()), WrittenFile(f"filler/{number}.dcm", 1, "0" * 64), "BENCH"
        )
    engine.dispose()


def bench_find(work: Path, destination_port: int) -> None:
    print(f"  C-FIND with {FIND_STUDIES:,} studies (writing them...)", flush=True)
    folder = work / "find"
    write_small_studies(folder, FIND_STUDIES, filler_patient, 4, images=1)
    name = f"C-FIND study by Patient ID, {FIND_STUDIES:,} studies"
    with empty_archive(OURS, work, "ours-find", destination_port) as ours:
        assert ours.config_path is not None
    index_files(ours.config_path, folder)
    with empty_archive(OURS, work, "ours-find", destination_port) as ours:  # started again on those rows
        for _ in range(RUNS):
            note(name, OURS, query_seconds(study_query(ours)), "ms")
    with empty_archive(REFERENCE, work, "reference-find", destination_port) as reference:
        store(reference, folder)
        for _ in range(RUNS):
            note(name, REFERENCE, query_seconds(study_query(reference)), "ms")


def export_worklist(port: int, folder: Path) -> Path:
    """Every scheduled step as ours answers it, one worklist file each (.wl), for the reference's
    ModalityWorklists plugin: both then hold the same 1,000 items."""
    first, last = date.today() - timedelta(days=10), date.today() + timedelta(days=10)
    for station in STATIONS:
        answers = folder / station
        answers.mkdir(parents=True)
        timed(
            worklist_query("APPLIANCE_MWL", port, station, f"{first:%Y%m%d}-{last:%Y%m%d}", "-X", "-od", str(answers))
        )
        for answer in answers.glob("rsp*.dcm"):
            answer.rename(folder / f"{station}-{answer.stem}.wl")
    exported = len(list(folder.glob("*.wl")))
    assert exported == STEPS, f"{exported} of {STEPS} steps exported"
    return folder


def bench_worklist(work: Path, destination_port: int) -> None:
    """The same query (today's steps of one station, given explicitly) to both: ours answers from
    its orders, the reference's plugin from the same items as files."""
    print(f"  worklist with {STEPS:,} scheduled steps (scheduling them...)", flush=True)
    (work / "worklist").mkdir()
    daemon = worklist_daemon(work / "worklist")
    name = f"worklist answer, {STEPS:,} scheduled steps"
    try:
        folder = export_worklist(daemon.port, work / "worklists")
        for _ in range(RUNS):
            query = worklist_query("APPLIANCE_MWL", daemon.port, "CT_SALLE1", f"{date.today():%Y%m%d}")
            note(name, OURS, query_seconds(query), "ms", WORKLIST_TARGET_MS)
    finally:
        daemon.stop()
    plugin = {"Plugins": [WORKLIST_PLUGIN], "Worklists": {"Enable": True, "Database": str(folder)}}
    known = {title: (title, 104) for title in CLIENTS}
    with Orthanc(work / "reference-worklist", modalities=known, settings=plugin) as reference:
        for _ in range(RUNS):
            query = worklist_query(REFERENCE, reference.dicom_port, "CT_SALLE1", f"{date.today():%Y%m%d}")
            note(name, REFERENCE, query_seconds(query), "ms", WORKLIST_TARGET_MS)


@dataclass(frozen=True)
class Data:
    """The same data for both archives."""

    series: Path
    groups: list[Path]  # the series split in 4 folders (hard links), one per association
    small: Path
    study_uid: str


def make_data(work: Path) -> Data:
    print(f"Generating a {SERIES_SIZE}-image CT series and {SMALL_STUDIES} small studies...", flush=True)
    series = work / "series"
    paths = write_series(series, SERIES_SIZE, "CT", PATIENTS[0])
    groups = [work / f"group{number}" for number in range(4)]
    for number, group in enumerate(groups):
        group.mkdir()
        for path in paths[number::4]:
            os.link(path, group / path.name)
    small = work / "small"
    write_small_studies(small, SMALL_STUDIES, lambda number: PATIENTS[number % len(PATIENTS)], 128, images=2)
    study_uid = str(dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID)
    # On the disk before anything is timed: the write-back of the generated files can land in the
    # first ingest runs' syncs (a `syncfs` waits for all of it, an `fsync` for the journal's commit).
    # One sitting's first CT runs took 1.2 to 1.3 s on both sides, its later ones 0.84 to 0.89 s;
    # 150 MB left unwritten before storing the small studies: 0.99 -> 1.40 s once, 0.95 -> 0.95 s.
    os.sync()
    return Data(series, groups, small, study_uid)


def table() -> None:
    """The one table: medians, the ratio, and a mark on each missed target."""
    print(f"\nOurs and the reference (Orthanc {orthanc_version()}), same data, same sitting, median of {RUNS} runs:")
    print(f"  {'figure':<60}{'ours':>12}{'reference':>12}{'ratio':>8}")
    for figure in FIGURES.values():
        ours = statistics.median(figure.ours)
        reference = statistics.median(figure.reference) if figure.reference else None
        ratio = ours / reference if reference else None
        missed = (ratio is not None and ratio > 1.0) or (figure.target is not None and ours >= figure.target)
        shown_reference = f"{reference:.3f} {figure.unit}" if reference is not None else "—"
        shown_ratio = f"{ratio:.2f}" if ratio is not None else f"< {figure.target:.0f}" if figure.target else ""
        mark = "  MISSED" if missed else ""
        print(f"  {figure.name:<60}{ours:>10.3f} {figure.unit}{shown_reference:>12}{shown_ratio:>8}{mark}")
    for line in NOTES:
        print(f"  ({line})")


def orthanc_version() -> str:
    found = subprocess.run(["Orthanc", "--version"], capture_output=True, text=True, check=False).stdout.split()
    return found[1] if len(found) > 1 else "?"


def main() -> int:
    if not available():
        print("  Orthanc is not installed (apt-get install orthanc): side-by-side benchmark skipped")
        return 0
    work = Path(tempfile.mkdtemp(prefix="appliance-bench-reference-"))
    try:
        data = make_data(work)
        destination_port = free_port()
        bench_ingest(work, data, destination_port)
        syncs_per_image(work, data, destination_port)
        bench_retrieve(work, data, destination_port)
        bench_find(work, destination_port)
        bench_worklist(work, destination_port)
        table()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
