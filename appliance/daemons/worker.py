"""`appliance-worker`: the background work that follows the change feed, off the ingest path:
verified lossless compression, and image availability for the RIS (later: dose, forwarding, tiers).

Each consumer keeps its own cursor in the feed, so the worker can stop and restart at any time
without losing work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta

from appliance.archive.index import Index
from appliance.archive.lossless import SYNTAXES, CompressionReport, LosslessCompressor
from appliance.archive.storage import FileStore
from appliance.config import Config
from appliance.daemons import runtime as process
from appliance.daemons.loops import Loop
from appliance.worklist.availability import announce_complete_studies

LOGGER = logging.getLogger(__name__)

IDLE = timedelta(seconds=2)


def compressor_of(config: Config, index: Index) -> LosslessCompressor:
    storage = config.storage
    files = FileStore(storage.data_directory, storage.minimum_free_space_mb * 1024 * 1024)
    delay = timedelta(seconds=config.lossless.delay_seconds)
    return LosslessCompressor(index, files, SYNTAXES[config.lossless.transfer_syntax], delay)


def compress_round(compressor: LosslessCompressor, executor: ProcessPoolExecutor) -> int:
    report = compressor.run_once(executor)
    if report.compressed or report.failed:
        log_compression(report)
    return report.compressed + report.skipped + report.failed


def log_compression(report: CompressionReport) -> None:
    LOGGER.info(
        "lossless: %d compressed, %d skipped, %d failed verification, %d bytes saved",
        report.compressed,
        report.skipped,
        report.failed,
        report.bytes_saved,
    )


def availability_round(runtime: process.Runtime) -> int:
    """Announce the studies quiet for the configured period (the period is read at each round)."""
    quiet = timedelta(seconds=runtime.config.worklist.study_complete_after_seconds)
    announced = announce_complete_studies(runtime.engine, quiet)
    if announced:
        LOGGER.info("images available: %d study(ies)", announced)
    return 0  # rounds are paced by IDLE whatever they found


def main(argv: Sequence[str] | None = None) -> int:
    runtime = process.start(argv, "Background worker: verified lossless compression, image availability.")
    if runtime is None:
        return 2
    config = runtime.config
    loops = [Loop("availability", lambda: availability_round(runtime), IDLE * 2)]
    executor = ProcessPoolExecutor(max_workers=config.lossless.worker_processes) if config.lossless.enabled else None
    if executor is not None:
        compressor = compressor_of(config, Index(runtime.engine))
        loops.append(Loop("lossless", lambda: compress_round(compressor, executor), IDLE))
    for loop in loops:
        loop.start()
    print(f"background worker running (lossless compression {'on' if executor else 'off'})", flush=True)
    try:
        return process.serve(
            runtime, lambda: all(loop.is_alive() for loop in loops), "background worker", name="appliance-worker"
        )
    finally:
        stop(loops, executor)
        runtime.engine.dispose()


def stop(loops: list[Loop], executor: ProcessPoolExecutor | None) -> None:
    stoppers = [threading.Thread(target=loop.stop) for loop in loops]
    for stopper in stoppers:
        stopper.start()
    for stopper in stoppers:
        stopper.join()
    if executor is not None:
        executor.shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
