"""Shared fixtures: synthetic data, and the archive daemon started on a free loopback port."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

sys.path.insert(0, str(Path(__file__).parent))

from datagen import PATIENTS, write_series
from postgres import postgresql_server
from servers import Daemon, archive_config, free_port, write_config

from appliance import practice_time
from appliance.db import create_index_engine, upgrade_schema


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """A few instances of each modality (CT, MR, CR, DX, MG, US multi-frame), French names."""
    root = tmp_path_factory.mktemp("samples")
    series = {}
    for position, modality in enumerate(["CT", "MR", "CR", "DX", "MG", "US"]):
        patient = PATIENTS[position % len(PATIENTS)]
        series[modality] = write_series(
            root / modality,
            3,
            modality,
            patient,
            accession_number=f"ACC{position:04d}",
            study_date=f"2026110{position}",
        )
    return series


@pytest.fixture()
def destination_port() -> int:
    return free_port()


@pytest.fixture()
def archive(tmp_path: Path, destination_port: int) -> Iterator[Daemon]:
    """The archive daemon in production mode with the test peers, on a free port."""
    config_path = write_config(tmp_path / "appliance.yaml", archive_config(tmp_path / "data", destination_port))
    daemon = Daemon("appliance.daemons.archive", config_path, tmp_path / "dicom.log").start()
    yield daemon
    daemon.stop()


@pytest.fixture()
def in_reunion() -> Iterator[None]:
    """The practice is in La Réunion (UTC+4 all year) for the test, in Paris again after it."""
    practice_time.use("Indian/Reunion")
    try:
        yield
    finally:
        practice_time.use(practice_time.DEFAULT_ZONE_NAME)


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    """A throwaway PostgreSQL database (skips where the server is not installed)."""
    try:
        with postgresql_server() as url:
            yield url
    except RuntimeError as error:
        pytest.skip(str(error))


@pytest.fixture()
def engine(tmp_path: Path) -> Iterator[Engine]:
    """An empty index (SQLite, every migration applied) in the test's folder."""
    engine = create_index_engine(f"sqlite:///{tmp_path / 'index.sqlite'}")
    upgrade_schema(engine)
    yield engine
    engine.dispose()
