"""The tunnel's state file and what is said about it: openings bounded to 1-72 hours with a reason
and consent, one opening at a time, closing at once, the expiry recorded once, an unreadable file
refused (the keeper keeps the tunnel closed), the monitor's finding, the autossh command."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from appliance.config import Config, development_config
from appliance.maintenance import autossh, notices
from appliance.maintenance.keeper import Keeper
from appliance.maintenance.state import (
    CLOSED,
    EXPIRED,
    AlreadyOpen,
    Opening,
    StateError,
    close_tunnel,
    expire,
    open_tunnel,
    read_state,
    state_path,
    write_state,
)
from appliance.monitor import tunnel
from appliance.monitor.findings import Severity
from appliance.monitor.sources import Context

NOON = datetime(2026, 3, 12, 11, 0, tzinfo=UTC)  # 12:00 in Paris


def with_bastion(config: Config) -> Config:
    return replace(config, maintenance=replace(config.maintenance, bastion_host="bastion.example.fr"))


def opening(hours: float = 2, reason: str = "mise à jour", consent: bool = True) -> Opening:
    return Opening("dr-x", "Dr X", "192.0.2.7", reason, consent, NOON, NOON + timedelta(hours=hours))


def test_open_close_and_expire(tmp_path: Path) -> None:
    path = tmp_path / "run" / "maintenance-tunnel.json"
    assert read_state(path) is None and close_tunnel(path, "dr-x", NOON) is None and expire(path, NOON) is None
    open_tunnel(path, opening())
    assert read_state(path) == opening() and (path.stat().st_mode & 0o777) == 0o640
    with pytest.raises(AlreadyOpen):
        open_tunnel(path, opening(hours=3))
    closed = close_tunnel(path, "admin", NOON + timedelta(minutes=5))
    assert closed is not None and (closed.closed_by, closed.closed_because) == ("admin", CLOSED)
    assert read_state(path) == closed and expire(path, NOON + timedelta(hours=3)) is None
    open_tunnel(path, opening())  # closed: a new opening is allowed
    assert expire(path, NOON + timedelta(hours=1)) is None  # not yet
    expired = expire(path, NOON + timedelta(hours=2, seconds=3))
    assert expired is not None and expired.closed_because == EXPIRED and expired.closed_at == NOON + timedelta(hours=2)
    assert expire(path, NOON + timedelta(hours=3)) is None  # recorded once


@pytest.mark.parametrize("bad", [opening(hours=0.5), opening(hours=73), opening(reason="  "), opening(consent=False)])
def test_an_opening_needs_its_bounds_a_reason_and_consent(tmp_path: Path, bad: Opening) -> None:
    with pytest.raises(ValueError):
        open_tunnel(tmp_path / "state.json", bad)
    assert not (tmp_path / "state.json").exists()


def test_writers_take_turns(tmp_path: Path) -> None:
    """Ten openings at once: exactly one wins, the file is whole."""
    path = tmp_path / "state.json"
    won: list[str] = []

    def attempt(number: int) -> None:
        try:
            open_tunnel(path, Opening(f"user{number}", "", "", "r", True, NOON, NOON + timedelta(hours=1)))
            won.append(f"user{number}")
        except AlreadyOpen:
            pass

    threads = [threading.Thread(target=attempt, args=(number,)) for number in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    state = read_state(path)
    assert len(won) == 1 and state is not None and state.opened_by == won[0]


def test_an_unreadable_state_is_refused_and_keeps_the_tunnel_closed(tmp_path: Path) -> None:
    config = with_bastion(development_config(tmp_path / "data"))
    path = state_path(config)
    path.parent.mkdir(parents=True)
    path.write_text('{"opening": {"opened_by": "x"')
    with pytest.raises(StateError):
        read_state(path)
    keeper = Keeper(lambda: config)
    assert keeper.step(NOON) == 1.0 and not keeper.running


def test_the_monitor_says_open_until_when_and_by_whom(tmp_path: Path, engine: Engine) -> None:
    config = development_config(tmp_path / "data")
    assert tunnel.read(Context(config, engine, NOON)).findings[0].severity is Severity.ABSENT
    config = with_bastion(config)
    closed = tunnel.read(Context(config, engine, NOON))
    assert (closed.findings[0].severity, closed.findings[0].message) == (Severity.OK, "Accès de maintenance fermé.")
    write_state(state_path(config), opening(hours=3.5))
    reading = tunnel.read(Context(config, engine, NOON + timedelta(minutes=30)))
    finding = reading.findings[0]
    assert finding.severity is Severity.OK
    assert finding.message == "Accès de maintenance ouvert jusqu'à 15 h 30 (par Dr X)."
    assert reading.measures[0].value == 180.0
    overdue = tunnel.read(Context(config, engine, NOON + timedelta(hours=3.5, minutes=5))).findings[0]
    assert overdue.severity is Severity.CRITICAL and "aurait dû se fermer à 15 h 30" in overdue.message
    state_path(config).write_text("not json")
    assert tunnel.read(Context(config, engine, NOON)).findings[0].severity is Severity.WARNING


def test_the_words_of_another_day_and_the_mails() -> None:
    long = opening(hours=40)
    assert notices.open_sentence(long, NOON) == "Accès de maintenance ouvert jusqu'au 14/03/2026 à 4 h 00 (par Dr X)."
    config = development_config(Path("/nonexistent"))
    subject, body = notices.opened_mail(config, opening())
    assert subject == "Accès de maintenance ouvert jusqu'à 14 h 00"
    assert "Dr X (dr-x)" in body and "Motif : mise à jour" in body and "Accord du cabinet : oui" in body
    assert json.dumps(dict(notices.audit_details(opening())))  # plain strings only


def test_the_autossh_command_pins_the_bastion_and_forwards_one_loopback_port() -> None:
    config = development_config(Path("/nonexistent"))
    arguments = autossh.command(config.maintenance)
    assert arguments[:4] == ["autossh", "-M", "0", "-F"] and "-N" in arguments
    assert "StrictHostKeyChecking=yes" in arguments and "ExitOnForwardFailure=yes" in arguments
    assert "UserKnownHostsFile=/etc/appliance/tunnel/known_hosts" in arguments
    assert arguments[-3:] == ["-R", "127.0.0.1:10022:127.0.0.1:22", "tunnel@"]
    assert autossh.environment(90)["AUTOSSH_MAXLIFETIME"] == "90"
