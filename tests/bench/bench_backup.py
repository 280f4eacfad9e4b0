"""`make bench`: figures of the backup on this machine (issue 10's benchmark), real borg and
borgmatic on a local repository (the same disk: no network in the figures).

- the first backup of a 600-image CT study (512x512 16-bit slices, body-like noisy pixels, as
  received: uncompressed), then an incremental backup after one more such study: time, and bytes
  sent (borg's "deduplicated size" of the new archive: what is added to the repository);
- the restore of one study into an empty box, through the ingest;
- the drill on an archive of 1,000 studies: small ones (one 256x256 MR image each, 128 KiB), to
  keep the set-up short; the drill's cost is per study extracted and per file hashed. With the
  default sample (20 studies) and with every study (1,000).
Nothing here asserts: it prints.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from backup_rig import box, ingest_of, receive_study, with_tools_on_path

from appliance.backup.drill import run_drill
from appliance.backup.history import runs
from appliance.cli import main
from appliance.config import load_config

IMAGES = int(os.environ.get("BENCH_IMAGES", "600"))
DRILL_STUDIES = int(os.environ.get("BENCH_DRILL_STUDIES", "1000"))


def megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


def timed(arguments: list[str]) -> float:
    started = time.perf_counter()
    code = main(arguments)
    assert code == 0, arguments
    return time.perf_counter() - started


def bench_ct(root: Path) -> None:
    repository = root / "repository"
    path = box(root / "box", {"repository": str(repository)})
    config = load_config(path)
    ingest = ingest_of(config)
    first_study = receive_study(ingest, IMAGES, modality="CT", seed=1)
    timed(["backup", "init", "--config", str(path)])
    seconds = timed(["backup", "run", "--config", str(path)])
    first = runs(config.backup.state_directory)[-1]
    print(f"first backup, {IMAGES}-image CT: {seconds:.1f} s, read {megabytes(first.original_bytes)}, "
          f"compressed {megabytes(first.compressed_bytes)}, sent {megabytes(first.deduplicated_bytes)}")  # fmt: skip
    receive_study(ingest, IMAGES, patient_number=1, modality="CT", seed=2)
    seconds = timed(["backup", "run", "--config", str(path)])
    second = runs(config.backup.state_directory)[-1]
    print(f"incremental backup after one more {IMAGES}-image CT: {seconds:.1f} s, read "
          f"{megabytes(second.original_bytes)}, sent {megabytes(second.deduplicated_bytes)}")  # fmt: skip
    seconds = timed(["backup", "run", "--config", str(path)])
    unchanged = runs(config.backup.state_directory)[-1]
    print(f"backup with nothing new: {seconds:.1f} s, sent {megabytes(unchanged.deduplicated_bytes)}")
    empty = box(root / "empty", {"repository": str(repository)})
    seconds = timed(["backup", "restore", "studies", "--study", first_study, "--config", str(empty)])
    print(f"restore of one {IMAGES}-image CT study into an empty box (extract, SHA-256, ingest): {seconds:.1f} s")


def bench_drill(root: Path) -> None:
    path = box(root / "box", {"repository": str(root / "repository")})
    config = load_config(path)
    ingest = ingest_of(config)
    for number in range(DRILL_STUDIES):
        receive_study(ingest, 1, patient_number=number, modality="MR", seed=number)
    timed(["backup", "init", "--config", str(path)])
    seconds = timed(["backup", "run", "--config", str(path)])
    print(f"backup of {DRILL_STUDIES} one-image MR studies: {seconds:.1f} s")
    for sample in (config.backup.drill.sample_studies, DRILL_STUDIES):
        record = run_drill(config, sample_size=sample)
        verdict = "ok" if record.succeeded else "FAILED"
        print(f"drill on {DRILL_STUDIES} studies, sample {sample}: {record.seconds:.1f} s, {record.studies} studies, "
              f"{record.files} files, {megabytes(record.bytes)} checked, {verdict}")  # fmt: skip


def main_bench() -> None:
    with_tools_on_path()
    with tempfile.TemporaryDirectory(prefix="bench-backup-") as folder:
        bench_ct(Path(folder) / "ct")
    with tempfile.TemporaryDirectory(prefix="bench-backup-") as folder:
        bench_drill(Path(folder) / "drill")


if __name__ == "__main__":
    main_bench()
