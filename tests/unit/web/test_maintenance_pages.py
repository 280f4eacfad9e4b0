"""The maintenance access page: administrators only; opening asks for a duration of 1 to 72 hours,
a reason and the practice's consent (each error next to its field), writes the tunnel's state for
`appliance-tunnel`, records 110113 / 110139 and mails the practice; closing at once records
110113 / 110140 and mails; a relay that refuses the mail does not keep the tunnel closed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from console_client import Events, csrf_token
from flask import Flask
from flask.testing import FlaskClient
from mail_sink import MailSink

from appliance.accounts.roles import Role
from appliance.audit.events import EventType, ObjectKind
from appliance.config import Settings, development_config
from appliance.maintenance.state import CLOSED, read_state, state_path

ADMINISTRATOR_ONLY = [role for role in Role if role is not Role.ADMINISTRATOR]


@pytest.fixture()
def sink() -> Iterator[MailSink]:
    server = MailSink().start()
    yield server
    server.stop()


@pytest.fixture()
def settings(tmp_path: Path, sink: MailSink) -> Settings:
    """The development configuration with a bastion and the mail sink as relay (console settings)."""
    console = tmp_path / "data" / "settings" / "console.yaml"
    console.parent.mkdir(parents=True)
    (tmp_path / "box.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBoxKey appliance@test\n")
    console.write_text(
        yaml.safe_dump(
            {
                "maintenance": {"bastion_host": "bastion.example.fr", "key_file": str(tmp_path / "box")},
                "mail": {"relay_host": "127.0.0.1", "relay_port": sink.port, "recipients": ["cabinet@example.fr"]},
            }
        )
    )
    return Settings(lambda: development_config(tmp_path / "data"))


def open_form(client: FlaskClient, **values: object) -> dict[str, object]:
    form: dict[str, object] = {"hours": 2, "reason": "mise à jour du noyau", "consent": "y"}
    return {**form, **values, "csrf_token": csrf_token(client, "/maintenance")}


@pytest.mark.parametrize("role", ADMINISTRATOR_ONLY)
def test_only_administrators_open_the_page(logged_in: Callable[[Role], FlaskClient], role: Role) -> None:
    client = logged_in(role)
    assert client.get("/maintenance").status_code == 403
    assert client.post("/maintenance/open", data={}).status_code in (400, 403)  # CSRF or permission
    assert "/maintenance" not in client.get("/my-account").get_data(as_text=True)


def test_open_then_close_at_once(
    logged_in: Callable[[Role], FlaskClient], app: Flask, events: Events, sink: MailSink
) -> None:
    client = logged_in(Role.ADMINISTRATOR)
    page = client.get("/maintenance").get_data(as_text=True)
    assert 'id="tunnel-closed"' in page and "Ouvrir l'accès de maintenance" in page
    assert "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBoxKey" in page  # the box's key for the contractor
    assert 'href="/maintenance"' in page  # in the menu
    before = datetime.now(UTC)
    opened = client.post("/maintenance/open", data=open_form(client), follow_redirects=True)
    page = opened.get_data(as_text=True)
    assert 'id="tunnel-open"' in page and "Fermer maintenant" in page and "mise à jour du noyau" in page
    assert "1 h 59 min" in page or "2 h 00 min" in page
    state = read_state(state_path(app.extensions["appliance"].config))
    assert state is not None and state.opened_by == "user-administrator" and state.consent
    assert timedelta(hours=2) <= state.until - before < timedelta(hours=2, seconds=30)
    [started] = events.of("110113")
    assert started.event_type is EventType.REMOTE_SERVICE_OPERATION_STARTED
    assert started.requestor is not None and started.requestor.user_id == "user-administrator"
    assert started.participants[1].user_id == "appliance-web"
    tunnel = started.objects[0]
    assert (tunnel.kind, tunnel.object_id) == (ObjectKind.SECURITY_RESOURCE, "maintenance-tunnel")
    assert ("reason", "mise à jour du noyau") in tunnel.details and ("consent", "yes") in tunnel.details
    subject, body = sink.mails[0]
    assert "Accès de maintenance ouvert jusqu" in subject and "User-Administrator" in body and "mise à jour" in body

    again = client.post("/maintenance/open", data=open_form(client), follow_redirects=True)
    assert "déjà ouvert" in again.get_data(as_text=True) and len(events.of("110113")) == 1

    closed = client.post("/maintenance/close", data={"csrf_token": csrf_token(client, "/maintenance")},
                         follow_redirects=True)  # fmt: skip
    page = closed.get_data(as_text=True)
    assert 'id="tunnel-closed"' in page and "Accès de maintenance fermé." in page and 'id="tunnel-last"' in page
    state = read_state(state_path(app.extensions["appliance"].config))
    assert state is not None and state.closed_because == CLOSED and state.closed_by == "user-administrator"
    stopped = events.of("110113")[1]
    assert stopped.event_type is EventType.REMOTE_SERVICE_OPERATION_STOPPED and stopped.outcome_description == "closed"
    assert ("closed-by", "user-administrator") in stopped.objects[0].details
    assert [subject for subject, _ in sink.mails][1] == "[Development appliance] Accès de maintenance fermé"

    twice = client.post("/maintenance/close", data={"csrf_token": csrf_token(client, "/maintenance")},
                        follow_redirects=True)  # fmt: skip
    assert "déjà fermé" in twice.get_data(as_text=True) and len(events.of("110113")) == 2


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        ({"hours": 0}, "hours", "entre 1 et 72 heures"),
        ({"hours": 73}, "hours", "entre 1 et 72 heures"),
        ({"hours": "deux"}, "hours", ""),
        ({"reason": "  "}, "reason", "dites pourquoi"),
        ({"reason": "x" * 501}, "reason", "500 caractères au plus"),
        ({"consent": ""}, "consent", "l&#39;accord du cabinet est nécessaire"),
    ],
)
def test_bad_input_is_answered_next_to_its_field(
    logged_in: Callable[[Role], FlaskClient], app: Flask, events: Events, values: dict[str, object], field: str,
    words: str,
) -> None:  # fmt: skip
    client = logged_in(Role.ADMINISTRATOR)
    answer = client.post("/maintenance/open", data=open_form(client, **values))
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400 and f'id="{field}-errors"' in page and words in page
    assert "mise à jour du noyau" in page or field == "reason"  # what was typed is kept
    assert read_state(state_path(app.extensions["appliance"].config)) is None and events.of("110113") == []


def test_a_refused_mail_does_not_keep_the_tunnel_closed(
    logged_in: Callable[[Role], FlaskClient], app: Flask, sink: MailSink
) -> None:
    sink.stop()  # the relay is down
    client = logged_in(Role.ADMINISTRATOR)
    page = client.post("/maintenance/open", data=open_form(client), follow_redirects=True).get_data(as_text=True)
    assert 'id="tunnel-open"' in page and "n&#39;a pas pu partir" in page
    state = read_state(state_path(app.extensions["appliance"].config))
    assert state is not None and state.is_open(datetime.now(UTC))


def test_without_a_bastion_the_page_says_so(
    logged_in: Callable[[Role], FlaskClient], app: Flask, tmp_path: Path
) -> None:
    (tmp_path / "data" / "settings" / "console.yaml").unlink()
    app.extensions["appliance"].settings.reload()
    client = logged_in(Role.ADMINISTRATOR)
    page = client.get("/maintenance").get_data(as_text=True)
    assert 'id="tunnel-unavailable"' in page and 'id="open-tunnel"' not in page
    assert 'id="box-public-key-missing"' in page
    refused = client.post("/maintenance/open", data=open_form(client), follow_redirects=True)
    assert "Aucun serveur du prestataire" in refused.get_data(as_text=True)
    assert read_state(state_path(app.extensions["appliance"].config)) is None
