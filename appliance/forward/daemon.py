"""`appliance-forward`: the background worker (verified lossless compression of new images).

It follows the archive's change feed, so it can stop and restart at any time without losing work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta

from appliance import service
from appliance.archive.index import Index
from appliance.archive.lossless import SYNTAXES, LosslessCompressor
from appliance.archive.storage import FileStore
from appliance.config import Config
from appliance.worklist.availability import announce_complete_studies

LOGGER = logging.getLogger(__name__)

IDLE_SECONDS = 2.0


def work(compressor: LosslessCompressor, processes: int, stop: threading.Event) -> None:
    """Compress until `stop` is set; sleep a little whenever nothing is due."""
    with ProcessPoolExecutor(max_workers=processes) as executor:
        while not stop.is_set():
            try:
                report = compressor.run_once(executor)
            except Exception:  # outermost loop: log, wait, try again
                LOGGER.exception("lossless compression round failed")
                stop.wait(IDLE_SECONDS * 5)
                continue
            if report.compressed or report.failed:
                LOGGER.info(
                    "lossless: %d compressed, %d skipped, %d failed verification, %d bytes saved",
                    report.compressed,
                    report.skipped,
                    report.failed,
                    report.bytes_saved,
                )
            if not (report.compressed or report.skipped or report.failed):
                stop.wait(IDLE_SECONDS)


def announce(index: Index, quiet: timedelta, stop: threading.Event) -> None:
    """Tell the RIS side which studies are complete (quiet for `quiet`), every few seconds."""
    while not stop.wait(IDLE_SECONDS * 2):
        try:
            announced = announce_complete_studies(index, quiet)
        except Exception:  # outermost loop: log, wait, try again
            LOGGER.exception("image availability round failed")
            continue
        if announced:
            LOGGER.info("images available: %d study(ies)", announced)


def main(argv: Sequence[str] | None = None) -> int:
    runtime = service.start(argv, "Background worker: verified lossless compression.")
    if runtime is None:
        return 2
    config = runtime.config
    files = FileStore(config.storage.data_directory, config.storage.minimum_free_space_mb * 1024 * 1024)
    index = Index(runtime.engine)
    compressor = LosslessCompressor(
        index,
        files,
        SYNTAXES[config.lossless.transfer_syntax],
        timedelta(seconds=config.lossless.delay_seconds),
    )
    stop = threading.Event()
    workers = [threading.Thread(target=announce, name="availability", args=(index, quiet_period(config), stop))]
    if config.lossless.enabled:
        arguments = (compressor, config.lossless.worker_processes, stop)
        workers.append(threading.Thread(target=work, args=arguments, name="lossless"))
    for worker in workers:
        worker.start()
    print(f"background worker running (lossless compression {'on' if config.lossless.enabled else 'off'})", flush=True)
    try:
        return service.serve_until_stopped(lambda: all(worker.is_alive() for worker in workers), "background worker")
    finally:
        stop.set()
        for worker in workers:
            worker.join()
        runtime.engine.dispose()


def quiet_period(config: Config) -> timedelta:
    return timedelta(seconds=config.worklist.study_complete_after_seconds)


if __name__ == "__main__":
    raise SystemExit(main())
