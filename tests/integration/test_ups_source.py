"""The UPS source against a real NUT (dummy-ups and upsd on 127.0.0.1), switched on line -> on
battery -> low battery -> on line by rewriting the driver's file; upsd stopped: unreachable."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from nut_server import nut_server
from servers import free_port
from sqlalchemy import Engine

from appliance.config import UpsConfig, development_config
from appliance.monitor import Reading, Severity
from appliance.monitor.sources import Context
from appliance.monitor.ups import read


def ups_context(tmp_path: Path, engine: Engine, ups: UpsConfig) -> Context:
    config = development_config(tmp_path / "data")
    config = dataclasses.replace(config, monitor=dataclasses.replace(config.monitor, ups=ups))
    return Context(config, engine, datetime.now(UTC))


def measures(reading: Reading) -> dict[str, float]:
    return {measure.name: measure.value for measure in reading.measures}


def test_the_findings_follow_the_ups(tmp_path: Path, engine: Engine) -> None:
    with nut_server(tmp_path / "nut") as ups:
        context = ups_context(tmp_path, engine, UpsConfig(ups.name, "127.0.0.1", ups.port))

        online = read(context)
        [finding] = online.findings
        assert (finding.source, finding.subject, finding.severity) == ("ups", "onduleur", Severity.OK)
        assert finding.message == "Onduleur sur secteur (batterie à 100 %, environ 30 min d'autonomie)."
        assert measures(online) == {"ups.onduleur.charge": 100, "ups.onduleur.runtime": 1800}

        ups.set_status("OB DISCHRG", charge=80, runtime=1500)
        ups.wait_for("OB DISCHRG")
        on_battery = read(context)
        [finding] = on_battery.findings
        assert finding.severity is Severity.WARNING
        assert finding.message == (
            "Coupure de courant : le boîtier fonctionne sur la batterie de l'onduleur "
            "(batterie à 80 %, environ 25 min d'autonomie)."
        )
        assert "ups.status OB DISCHRG" in finding.detail and "Simulated Dummy 1500" in finding.detail
        assert measures(on_battery) == {"ups.onduleur.charge": 80, "ups.onduleur.runtime": 1500}

        ups.set_status("OB DISCHRG LB", charge=9, runtime=120)
        ups.wait_for("OB DISCHRG LB")
        [finding] = read(context).findings
        assert finding.severity is Severity.CRITICAL and "presque vide" in finding.message

        ups.set_status("OL CHRG", charge=12, runtime=200)
        ups.wait_for("OL CHRG")
        [finding] = read(context).findings
        assert finding.severity is Severity.OK and "batterie à 12 %" in finding.message

        unknown = read(ups_context(tmp_path, engine, UpsConfig("autre", "127.0.0.1", ups.port)))
        assert unknown.findings[0].severity is Severity.CRITICAL and "UNKNOWN-UPS" in unknown.findings[0].detail


def test_an_unreachable_upsd_is_critical(tmp_path: Path, engine: Engine) -> None:
    port = free_port()  # nothing listens there
    [finding] = read(ups_context(tmp_path, engine, UpsConfig("onduleur", "127.0.0.1", port))).findings
    assert (finding.subject, finding.severity) == ("onduleur", Severity.CRITICAL)
    assert "ne répond pas" in finding.message and f"onduleur@127.0.0.1:{port}" in finding.detail


def test_no_ups_configured_is_absent(tmp_path: Path, engine: Engine) -> None:
    [finding] = read(ups_context(tmp_path, engine, UpsConfig("", "127.0.0.1", 3493))).findings
    assert finding.severity is Severity.ABSENT and finding.message == "Pas d'onduleur surveillé sur cette machine."
