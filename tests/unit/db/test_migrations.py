"""Data migrations on a real index (SQLite and PostgreSQL): what a migration computes, forth and back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from postgres import database_of_its_own
from sqlalchemy import Engine, text

from appliance.db import create_index_engine
from appliance.db.engine import alembic_config

NAMES = {
    "ŒUVRARD^Chloé": ("OEUVRARD^CHLOE", "ŒUVRARD^CHLOE"),
    "Lætitia^STRAßE": ("LAETITIA^STRASSE", "LÆTITIA^STRAẞE"),
    "LEFÈVRE^Hélène": ("LEFEVRE^HELENE", "LEFEVRE^HELENE"),
}


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_at_0005(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'index.sqlite'}"
    else:
        url = database_of_its_own(request.getfixturevalue("postgresql_url"), "migrations")
    engine = create_index_engine(url)
    command.upgrade(alembic_config(engine), "0005")
    yield engine
    engine.dispose()


def add_rows(engine: Engine) -> None:
    moment = datetime.now(UTC)
    with engine.begin() as connection:
        for number, (name, (old_key, _)) in enumerate(NAMES.items(), start=1):
            connection.execute(
                text(
                    "INSERT INTO patient (id, patient_id, patient_name, patient_name_key, created_at, updated_at) "
                    "VALUES (:id, :patient_id, :name, :key, :moment, :moment)"
                ),
                {"id": number, "patient_id": f"IPP{number}", "name": name, "key": old_key, "moment": moment},
            )
            connection.execute(
                text(
                    "INSERT INTO study (id, patient_pk, study_instance_uid, referring_physician_name, "
                    "referring_physician_name_key, received_at, updated_at) "
                    "VALUES (:id, :id, :uid, :name, :key, :moment, :moment)"
                ),
                {"id": number, "uid": f"1.2.{number}", "name": name, "key": old_key, "moment": moment},
            )


def keys(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as connection:
        return [
            (row[0], row[1])
            for row in connection.execute(
                text(
                    "SELECT patient.patient_name_key, study.referring_physician_name_key FROM patient "
                    "JOIN study ON study.patient_pk = patient.id ORDER BY patient.id"
                )
            )
        ]


def test_0006_keeps_ligatures_in_name_keys_and_spells_them_out_again_on_downgrade(engine_at_0005: Engine) -> None:
    add_rows(engine_at_0005)
    config = alembic_config(engine_at_0005)
    command.upgrade(config, "0006")
    assert keys(engine_at_0005) == [(new, new) for _, new in NAMES.values()]
    command.downgrade(config, "0005")
    assert keys(engine_at_0005) == [(old, old) for old, _ in NAMES.values()]
