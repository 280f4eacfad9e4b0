"""`make bench`: figures of the archive on this machine (issue 2's benchmark).

A 600-image CT series of 512x512 16-bit slices (realistic header, body-like noisy pixels) is stored
with DCMTK's storescu over 1 and over 4 associations, retrieved with getscu (C-GET) and movescu
(C-MOVE to storescp), queried with a pynetdicom SCU (association open) with 1 and 10,000 studies in
the index, and compressed losslessly (verified). Every DCMTK client runs with TCP_NODELAY=1.
Figures are medians where a measurement is repeated. Nothing here asserts: it prints.

`bench_archive.py retrieve` compares retrieve with the reference archive (Orthanc, tests/orthanc.py)
side by side in one run, on the same series: C-GET (getscu) and C-MOVE (movescu to storescp), first
image and whole series, median of 3, with the study stored uncompressed, then stored as JPEG-LS
(ours compressed by `archive compress`, the reference given the same series compressed with
CharLS) to a peer accepting JPEG-LS and to one accepting only uncompressed syntaxes. With
`BENCH_BEFORE_PYTHONPATH` set (a checkout of another revision), an archive of that revision is
measured in the same run as a third column (its daemon started with PYTHONSAFEPATH, so that the
current directory does not shadow that checkout).

`bench_archive.py ingest` (issue 14) runs only the ingest beside the reference archive (Orthanc,
the Debian package, started on 127.0.0.1 by `tests/orthanc.py`): the same storescu commands into
both, 1 and 4 associations and 200 one-image studies, each a median of 3 with the systems taking
turns, and the ratios ours / reference. BENCH_BASELINE_TREE=<another checkout> adds its archive as
a "before" column, measured in the same sitting.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from datagen import PATIENTS, encoded, make_instance, write_series
from orthanc import Orthanc, available
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, generate_uid
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind  # type: ignore[attr-defined]
from servers import Daemon, archive_config, associate, cli, free_port, wait_for_port, write_config

from appliance.archive.attributes import read_attributes
from appliance.archive.index import Index
from appliance.archive.lossless import compress_verified
from appliance.archive.storage import WrittenFile
from appliance.db import create_index_engine, upgrade_schema

SERIES_SIZE = int(os.environ.get("BENCH_IMAGES", "600"))
FILLER_STUDIES = int(os.environ.get("BENCH_STUDIES", "10000"))
QUERY_REPEATS = 30
ENVIRONMENT = {**os.environ, "TCP_NODELAY": "1"}
RESULTS: list[tuple[str, str, str]] = []


def report(figure: str, value: str, target: str = "") -> None:
    RESULTS.append((figure, value, target))
    print(f"  {figure:<58} {value:>14}  {target}", flush=True)


def timed(command: list[str], environment: dict[str, str] = ENVIRONMENT) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def first_file_watch(directory: Path) -> tuple[threading.Thread, list[float]]:
    """A thread noting when the first file appears in `directory`."""
    seen: list[float] = []

    def watch() -> None:
        deadline = time.perf_counter() + 120
        while time.perf_counter() < deadline:
            if any(directory.iterdir()):
                seen.append(time.perf_counter())
                return
            time.sleep(0.0005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread, seen


def start_archive(work: Path, name: str, destination_port: int) -> Daemon:
    config = archive_config(work / name, destination_port, lossless={"enabled": False}, logging={"level": "WARNING"})
    config_path = write_config(work / f"{name}.yaml", config)
    return Daemon("appliance.daemons.archive", config_path, work / f"{name}.log").start()


def bench_ingest(archive: Daemon, series: Path, work: Path) -> None:
    seconds = timed(["storescu", "-aec", "APPLIANCE", "+sd", "+r", "127.0.0.1", str(archive.port), str(series)])
    report(f"ingest {SERIES_SIZE} images, 1 association", f"{seconds:.2f} s", "target < 5 s")
    report("  images per second, 1 association", f"{SERIES_SIZE / seconds:.0f}/s")


def bench_ingest_parallel(archive: Daemon, series: Path, work: Path) -> None:
    files = sorted(series.iterdir())
    groups = [work / f"group{number}" for number in range(4)]
    for number, group in enumerate(groups):
        group.mkdir()
        for path in files[number::4]:
            os.link(path, group / path.name)
    start = time.perf_counter()
    processes = [
        subprocess.Popen(
            ["storescu", "-aec", "APPLIANCE", "+sd", "127.0.0.1", str(archive.port), str(group)],
            env=ENVIRONMENT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for group in groups
    ]
    latencies = queries_while(lambda: any(process.poll() is None for process in processes), archive.port)
    seconds = time.perf_counter() - start
    report(f"ingest {SERIES_SIZE} images, 4 associations", f"{seconds:.2f} s")
    report("  images per second, 4 associations", f"{SERIES_SIZE / seconds:.0f}/s")
    if latencies:
        report("  C-FIND by Patient ID during that ingest: median", f"{statistics.median(latencies):.1f} ms")
        report("  C-FIND by Patient ID during that ingest: slowest", f"{max(latencies):.1f} ms")


def queries_while(busy: Callable[[], bool], port: int) -> list[float]:
    """C-FIND latencies (ms) measured one after the other for as long as `busy()` holds."""
    assoc = associate(port, StudyRootQueryRetrieveInformationModelFind, ae_title="FINDSCU")
    latencies = []
    while busy():
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = ""
        query.PatientID = "IPP0001"
        start = time.perf_counter()
        list(assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind))
        latencies.append((time.perf_counter() - start) * 1000)
    assoc.release()
    return latencies


def bench_get(archive: Daemon, study_uid: str, work: Path) -> None:
    firsts, totals = [], []
    for attempt in range(3):
        output = work / f"get{attempt}"
        output.mkdir()
        watcher, seen = first_file_watch(output)
        start = time.perf_counter()
        timed(
            [
                "getscu",
                "-S",
                "-aec",
                "APPLIANCE",
                "-od",
                str(output),
                "-k",
                "QueryRetrieveLevel=STUDY",
                "-k",
                f"StudyInstanceUID={study_uid}",
                "127.0.0.1",
                str(archive.port),
            ]
        )
        totals.append(time.perf_counter() - start)
        watcher.join()
        firsts.append(seen[0] - start)
        assert len(list(output.iterdir())) == SERIES_SIZE
        shutil.rmtree(output)
    report("C-GET series: first image (median of 3)", f"{statistics.median(firsts):.3f} s", "target < 0.1 s")
    report(
        f"C-GET series: all {SERIES_SIZE} images (median of 3)", f"{statistics.median(totals):.2f} s", "target < 1.5 s"
    )


def bench_move(archive: Daemon, study_uid: str, work: Path, destination_port: int) -> None:
    firsts, totals = [], []
    for attempt in range(3):
        output = work / f"move{attempt}"
        output.mkdir()
        destination = subprocess.Popen(
            ["storescp", "-aet", "STORESCP", "-od", str(output), str(destination_port)],
            env=ENVIRONMENT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(destination_port, "storescp", destination)
        watcher, seen = first_file_watch(output)
        start = time.perf_counter()
        timed(
            [
                "movescu",
                "-S",
                "-aec",
                "APPLIANCE",
                "-aem",
                "STORESCP",
                "-k",
                "QueryRetrieveLevel=STUDY",
                "-k",
                f"StudyInstanceUID={study_uid}",
                "127.0.0.1",
                str(archive.port),
            ]
        )
        totals.append(time.perf_counter() - start)
        watcher.join()
        firsts.append(seen[0] - start)
        destination.terminate()
        destination.wait()
        assert len(list(output.iterdir())) == SERIES_SIZE
        shutil.rmtree(output)
    report("C-MOVE series to storescp: first image (median of 3)", f"{statistics.median(firsts):.3f} s")
    report(f"C-MOVE series to storescp: all {SERIES_SIZE} (median of 3)", f"{statistics.median(totals):.2f} s")


def find_latency(port: int, keys: dict[str, str]) -> float:
    assoc = associate(port, StudyRootQueryRetrieveInformationModelFind, ae_title="FINDSCU")
    samples = []
    for _ in range(QUERY_REPEATS):
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = ""
        query.StudyDate = ""
        query.PatientName = ""
        query.PatientID = ""
        for keyword, value in keys.items():
            setattr(query, keyword, value)
        start = time.perf_counter()
        answers = list(assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind))
        samples.append(time.perf_counter() - start)
        assert answers[-1][0].Status == 0
    assoc.release()
    return statistics.median(samples) * 1000


def bench_find(archive: Daemon, label: str) -> None:
    by_id = find_latency(archive.port, {"PatientID": "IPP0001"})
    by_name = find_latency(archive.port, {"PatientName": "ŒUVR*", "SpecificCharacterSet": "ISO_IR 192"})
    target = "target < 15 ms" if "10,000" in label else ""
    report(f"C-FIND study by Patient ID, {label}", f"{by_id:.1f} ms", target)
    report(f"C-FIND study by name wildcard ŒUVR*, {label}", f"{by_name:.1f} ms")


def fill_index(config_path: Path, studies: int) -> None:
    """Add `studies` synthetic one-image studies (index rows only) for other patients."""
    import yaml

    config = yaml.safe_load(config_path.read_text())
    engine = create_index_engine(
        f"sqlite:///{Path(config['storage']['data_directory']) / 'index' / 'appliance.sqlite'}"
    )
    upgrade_schema(engine)
    index = Index(engine)
    template = make_instance("CT", PATIENTS[1])
    template.Rows = template.Columns = 4
    template.PixelData = b"\0" * 32
    surnames = ["MARTIN", "BERNARD", "THOMAS", "PETIT", "ROBERT", "RICHARD", "DURAND", "DUBOIS", "MOREAU", "LAURENT"]
    for number in range(studies):
        template.PatientID = f"P{number // 3:07d}"
        template.PatientName = f"{surnames[number % 10]}{number // 10}^Prénom"
        template.StudyInstanceUID = generate_uid()
        template.SeriesInstanceUID = generate_uid()
        template.SOPInstanceUID = template.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        template.StudyDate = f"20{10 + number % 16:02d}{1 + number % 12:02d}{1 + number % 28:02d}"
        attributes = read_attributes(encoded(template))
        index.add_instance(attributes, WrittenFile(f"filler/{number}.dcm", 1, "0" * 64), "FILLER")
    engine.dispose()


def bench_compression(archive: Daemon) -> None:
    before = cli(archive.config_path, "archive", "stats").stdout
    start = time.perf_counter()
    cli(archive.config_path, "archive", "compress", "--all")
    seconds = time.perf_counter() - start
    after = cli(archive.config_path, "archive", "stats").stdout

    def figure(text: str, name: str) -> int:
        return int(next(line for line in text.splitlines() if line.startswith(name)).split()[-1])

    report("study bytes on disk before lossless compression", f"{figure(before, 'bytes on disk') / 1e6:.1f} MB")
    report("study bytes on disk after (JPEG-LS, verified)", f"{figure(after, 'bytes on disk') / 1e6:.1f} MB")
    report("  compress + decode + compare, 1 process", f"{seconds:.1f} s")


def bench_codecs() -> None:
    print("\nLossless codecs per modality (encode + decode + compare, one core, median of 5 images):")
    print(f"  {'modality':<10}{'JPEG-LS ratio':>14}{'ms/image':>10}{'J2K ratio':>12}{'ms/image':>10}")
    for modality in ("CT", "CR", "DX", "MG", "US"):
        row = [modality]
        for syntax in (JPEGLSLossless, JPEG2000Lossless):
            ratios, times = [], []
            for seed in range(5):
                original = encoded(make_instance(modality, seed=seed + 1))
                start = time.perf_counter()
                result = compress_verified(original, syntax)
                times.append((time.perf_counter() - start) * 1000)
                ratios.append(len(original) / len(result.encoded))
            row += [f"{statistics.median(ratios):.2f}:1", f"{statistics.median(times):.0f}"]
        print(f"  {row[0]:<10}{row[1]:>14}{row[2]:>10}{row[3]:>12}{row[4]:>10}")


# Peers by what they accept: getscu / storescp options.
ACCEPTS = {"uncompressed only": (), "JPEG-LS first": ("+xt",)}


def retrieve_once(
    kind: str, port: int, called: str, study_uid: str, work: Path, options: tuple[str, ...]
) -> tuple[float, float]:
    """One C-GET or C-MOVE of the study: (seconds to the first file, seconds for all)."""
    output = work / "received"
    output.mkdir()
    destination = None
    keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}"]
    if kind == "C-GET":
        command = ["getscu", *options, "-S", "-aet", "GETSCU", "-aec", called, "-od", str(output), *keys]
    else:
        destination_port = MOVE_DESTINATION_PORT
        destination = subprocess.Popen(
            ["storescp", *options, "-aet", "STORESCP", "-od", str(output), str(destination_port)],
            env=ENVIRONMENT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(destination_port, "storescp", destination)
        command = ["movescu", "-S", "-aet", "MOVESCU", "-aec", called, "-aem", "STORESCP", *keys]
    watcher, seen = first_file_watch(output)
    start = time.perf_counter()
    timed([*command, "127.0.0.1", str(port)])
    total = time.perf_counter() - start
    watcher.join()
    if destination is not None:
        destination.terminate()
        destination.wait()
    count = len(list(output.iterdir()))
    shutil.rmtree(output)
    if count != SERIES_SIZE:
        print(f"  !! {kind} from {called}: {count} of {SERIES_SIZE} files", flush=True)
    return seen[0] - start if seen else float("nan"), total


MOVE_DESTINATION_PORT = 0


def compressed_copy(series: Path, directory: Path) -> Path:
    """The series compressed in JPEG-LS lossless (CharLS), for the reference archive."""
    directory.mkdir()
    for path in sorted(series.iterdir()):
        dataset = dcmread(path)
        dataset.compress(JPEGLSLossless, encoding_plugin="pyjpegls", generate_instance_uid=False)
        dataset.save_as(directory / path.name, enforce_file_format=True)
    return directory


def compare_retrieves(columns: dict[str, tuple[int, str]], study_uid: str, work: Path, stored: str) -> None:
    """Each retrieve from each archive in turn (3 rounds), then the medians side by side."""
    figures: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    accepts = ACCEPTS if stored == "JPEG-LS" else {"uncompressed only": ()}
    for _round in range(3):
        for kind in ("C-GET", "C-MOVE"):
            for peer, options in accepts.items():
                for name, (port, called) in columns.items():
                    sample = retrieve_once(kind, port, called, study_uid, work, options)
                    figures.setdefault((kind, peer, name), []).append(sample)
    names = list(columns)
    header = "".join(f"{name:>12}" for name in names)
    ratios = "".join(f"{'/' + name:>10}" for name in names[1:])
    print(f"\n  stored {stored}; seconds, median of 3{'':<22}{header}{ratios}")
    for kind in ("C-GET", "C-MOVE"):
        for peer in accepts:
            for index, part in ((0, "first image"), (1, f"all {SERIES_SIZE}")):
                values = [statistics.median(sample[index] for sample in figures[(kind, peer, name)]) for name in names]
                label = f"{kind} to a peer accepting {peer}: {part}"
                cells = "".join(f"{value:>12.3f}" for value in values)
                ratio_cells = "".join(f"{value / values[0]:>10.2f}" for value in values[1:])
                print(f"  {label:<62}{cells}{ratio_cells}", flush=True)


def retrieve_main() -> int:
    """Retrieve: ours (and another revision's) against the reference archive, in one run."""
    global MOVE_DESTINATION_PORT
    if not available():
        print("  Orthanc is not installed (apt-get install orthanc): retrieve comparison skipped")
        return 0
    os.environ["TCP_NODELAY"] = "1"  # DCMTK's switch, for Orthanc's sockets too (this script's own environment)
    work = Path(tempfile.mkdtemp(prefix="appliance-bench-retrieve-"))
    daemons: list[Daemon] = []
    references: list[Orthanc] = []
    try:
        series = work / "series"
        paths = write_series(series, SERIES_SIZE, "CT", PATIENTS[0])
        study_uid = dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID
        MOVE_DESTINATION_PORT = free_port()
        modalities = {title: (title, MOVE_DESTINATION_PORT) for title in ("STORESCP", "GETSCU", "MOVESCU")}
        plain = Orthanc(work / "orthanc-plain", modalities=modalities).start()
        references.append(plain)
        builds = {"ours": ""}
        if os.environ.get("BENCH_BEFORE_PYTHONPATH"):
            builds["before"] = os.environ["BENCH_BEFORE_PYTHONPATH"]
        for name, pythonpath in builds.items():
            daemon = start_archive(work, name, MOVE_DESTINATION_PORT)
            if pythonpath:
                daemon.stop()
                daemon = Daemon(daemon.module, daemon.config_path, daemon.log_path,
                                environment={"PYTHONPATH": pythonpath, "PYTHONSAFEPATH": "1"}).start()  # fmt: skip
            daemons.append(daemon)
        for port in [plain.dicom_port, *(daemon.port for daemon in daemons)]:
            called = "ORTHANC" if port == plain.dicom_port else "APPLIANCE"
            timed(["storescu", "-aec", called, "+sd", "127.0.0.1", str(port), str(series)])
        columns = {"reference": (plain.dicom_port, "ORTHANC")}
        columns.update({name: (daemon.port, "APPLIANCE") for name, daemon in zip(builds, daemons, strict=True)})
        compare_retrieves(columns, study_uid, work, "uncompressed")
        plain.stop()
        compressed = Orthanc(work / "orthanc-jpeg-ls", modalities=modalities).start()
        references.append(compressed)
        timed(["storescu", "-aec", "ORTHANC", "-xt", "+sd", "127.0.0.1", str(compressed.dicom_port),
               str(compressed_copy(series, work / "series-jpeg-ls"))])  # fmt: skip
        for daemon in daemons:  # each compressed by its own revision's command
            subprocess.run([sys.executable, "-m", "appliance.cli", "archive", "compress", "--all", "--config",
                            str(daemon.config_path)], check=True, env={**os.environ, **daemon.environment},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=1800)  # fmt: skip
        columns["reference"] = (compressed.dicom_port, "ORTHANC")
        compare_retrieves(columns, study_uid, work, "JPEG-LS")
    finally:
        for daemon in daemons:
            daemon.stop()
        for reference in references:
            reference.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


# Ingest beside the reference archive (issue 14): the same files, the same storescu commands, in one
# sitting. `python tests/bench/bench_archive.py ingest` runs this section alone; with
# BENCH_BASELINE_TREE set to another checkout of the project, its archive is measured too (a column
# "before"), its daemon started with that checkout first on PYTHONPATH.

SMALL_STUDIES = int(os.environ.get("BENCH_SMALL_STUDIES", "200"))
INGEST_RUNS = int(os.environ.get("BENCH_INGEST_RUNS", "3"))


def write_small_studies(directory: Path, count: int) -> None:
    """`count` one-image studies (CT 128x128) of several patients, the way a day of small
    examinations arrives: every object creates its study and series (and often its patient)."""
    directory.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        dataset = make_instance("CT", PATIENTS[number % len(PATIENTS)], seed=number + 1)
        dataset.Rows = dataset.Columns = 128
        dataset.PixelData = dataset.PixelData[: 128 * 128 * 2]
        dataset.save_as(directory / f"small{number:05d}.dcm", enforce_file_format=True)


def split_in_four(series: Path, work: Path) -> list[Path]:
    files = sorted(series.iterdir())
    groups = [work / f"quarter{number}" for number in range(4)]
    for number, group in enumerate(groups):
        group.mkdir(exist_ok=True)
        for path in files[number::4]:
            if not (group / path.name).exists():
                os.link(path, group / path.name)
    return groups


def storescu_seconds(called: str, port: int, folders: list[Path]) -> float:
    """Wall time of one storescu per folder, all in parallel (one association each)."""
    start = time.perf_counter()
    processes = [
        subprocess.Popen(
            ["storescu", "-aec", called, "+sd", "+r", "127.0.0.1", str(port), str(folder)],
            env=ENVIRONMENT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for folder in folders
    ]
    codes = [process.wait() for process in processes]
    seconds = time.perf_counter() - start
    assert codes == [0] * len(folders), codes
    return seconds


def reference_run(work: Path, name: str, folders: list[Path], expected: int) -> float:
    from orthanc import Orthanc

    with Orthanc(work / name) as orthanc:
        seconds = storescu_seconds("ORTHANC", orthanc.dicom_port, folders)
        assert orthanc.statistics()["CountInstances"] == expected
    shutil.rmtree(work / name, ignore_errors=True)
    return seconds


def archive_run(work: Path, name: str, folders: list[Path], expected: int, tree: str = "") -> float:
    config = archive_config(work / name, free_port(), lossless={"enabled": False}, logging={"level": "WARNING"})
    config_path = write_config(work / f"{name}.yaml", config)
    environment = {"PYTHONPATH": os.pathsep.join([tree, os.environ.get("PYTHONPATH", "")])} if tree else {}
    archive = Daemon("appliance.daemons.archive", config_path, work / f"{name}.log", environment=environment).start()
    try:
        seconds = storescu_seconds("APPLIANCE", archive.port, folders)
    finally:
        archive.stop()
    stored = len(list((work / name / "archive").rglob("*.dcm")))
    assert stored == expected, (stored, expected)
    shutil.rmtree(work / name, ignore_errors=True)
    return seconds


def bench_ingest_against_reference(work: Path, series: Path) -> None:
    """Median of INGEST_RUNS runs of each case, the systems taking turns within a run."""
    from orthanc import available

    if not available():
        print("  Orthanc is not installed (apt-get install orthanc): ingest comparison skipped")
        return
    os.environ["TCP_NODELAY"] = "1"  # for Orthanc (DCMTK reads it), started with this script's environment
    small = work / "small"
    write_small_studies(small, SMALL_STUDIES)
    cases = [
        (f"ingest {SERIES_SIZE} CT images, 1 association", [series], SERIES_SIZE),
        (f"ingest {SERIES_SIZE} CT images, 4 associations", split_in_four(series, work), SERIES_SIZE),
        (f"ingest {SMALL_STUDIES} one-image studies, 1 association", [small], SMALL_STUDIES),
    ]
    baseline = os.environ.get("BENCH_BASELINE_TREE", "")
    systems: list[tuple[str, Callable[[str, list[Path], int], float]]] = [
        ("reference", lambda name, folders, expected: reference_run(work, name, folders, expected)),
        ("ours", lambda name, folders, expected: archive_run(work, name, folders, expected)),
    ]
    if baseline:
        systems.append(("before", lambda name, folders, expected: archive_run(work, name, folders, expected, baseline)))
    header = "".join(f"{label:>11}" for label, _ in systems)
    ratios = "".join(f"{label + '/ref':>12}" for label, _ in systems[1:])
    print(f"\nIngest beside the reference archive (median of {INGEST_RUNS}, seconds):")
    print(f"  {'case':<48}{header}{ratios}", flush=True)
    for case, folders, expected in cases:
        samples: dict[str, list[float]] = {label: [] for label, _ in systems}
        for attempt in range(INGEST_RUNS):
            for label, run in systems:
                samples[label].append(run(f"{label}-{attempt}", folders, expected))
        medians = {label: statistics.median(values) for label, values in samples.items()}
        reference = medians["reference"]
        cells = "".join(f"{medians[label]:>11.2f}" for label, _ in systems)
        cells += "".join(f"{medians[label] / reference:>12.2f}" for label, _ in systems[1:])
        print(f"  {case:<48}{cells}", flush=True)
        spread = "; ".join(
            f"{label} " + " ".join(f"{value:.2f}" for value in values) for label, values in samples.items()
        )
        print(f"    runs: {spread}", flush=True)


def main() -> int:
    if sys.argv[1:] == ["retrieve"]:
        return retrieve_main()
    work = Path(tempfile.mkdtemp(prefix="appliance-bench-"))
    try:
        print(f"Generating a {SERIES_SIZE}-image CT series (512x512, 16-bit)...", flush=True)
        series = work / "series"
        paths = write_series(series, SERIES_SIZE, "CT", PATIENTS[0])
        if sys.argv[1:] == ["ingest"]:
            bench_ingest_against_reference(work, series)
            return 0
        study_uid = dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID
        size = sum(path.stat().st_size for path in paths)
        print(f"  {len(paths)} files, {size / 1e6:.1f} MB\n\nFigures (2-core machine, loopback):")
        destination_port = free_port()
        archive = start_archive(work, "one", destination_port)
        try:
            bench_ingest(archive, series, work)
            bench_find(archive, "1 study in the index")
            bench_get(archive, study_uid, work)
            bench_move(archive, study_uid, work, destination_port)
            bench_compression(archive)
        finally:
            archive.stop()
        parallel = start_archive(work, "four", destination_port)
        try:
            bench_ingest_parallel(parallel, series, work)
        finally:
            parallel.stop()
        print(f"  (filling the index with {FILLER_STUDIES} more studies...)", flush=True)
        fill_index(archive.config_path, FILLER_STUDIES)
        archive = start_archive(work, "one", destination_port)
        try:
            bench_find(archive, f"{FILLER_STUDIES + 1:,} studies in the index".replace(",", ","))
        finally:
            archive.stop()
        bench_codecs()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
