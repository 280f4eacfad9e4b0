"""The certificate source reads the console's server certificate where `appliance.certificates`
makes it (the data folder's tls/ under the development settings), seen at several dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from appliance.certificates import BoxIdentity, ensure, tls_directory
from appliance.config import development_config
from appliance.monitor import Severity
from appliance.monitor.certificate import read
from appliance.monitor.sources import Context

MADE = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def test_expiry_seen_over_the_certificate_s_life(tmp_path: Path, engine: Engine) -> None:
    config = development_config(tmp_path / "data")
    made = ensure(tls_directory(config), BoxIdentity("Cabinet de radiologie", "pacs"), MADE)
    end = made.server.not_valid_after_utc

    def seen_at(moment: datetime) -> tuple[Severity, str]:
        [finding] = read(Context(config, engine, moment)).findings
        assert (finding.source, finding.subject) == ("certificate", "console")
        return finding.severity, finding.message

    assert seen_at(MADE + timedelta(days=10)) == (Severity.OK, "Certificat de la console valable encore 386 jours.")
    severity, message = seen_at(end - timedelta(days=12, hours=1))
    assert severity is Severity.WARNING and "expire dans 12 jours" in message
    severity, message = seen_at(end + timedelta(minutes=1))
    assert severity is Severity.CRITICAL and "a expiré" in message


def test_no_certificate_is_absent(tmp_path: Path, engine: Engine) -> None:
    [finding] = read(Context(development_config(tmp_path / "data"), engine, MADE)).findings
    assert finding.severity is Severity.ABSENT and "server.crt does not exist" in finding.detail


def test_an_unreadable_certificate_is_a_warning(tmp_path: Path, engine: Engine) -> None:
    config = development_config(tmp_path / "data")
    tls_directory(config).mkdir(parents=True)
    (tls_directory(config) / "server.crt").write_text("not a certificate\n")
    [finding] = read(Context(config, engine, MADE)).findings
    assert finding.severity is Severity.WARNING and "illisible" in finding.message
