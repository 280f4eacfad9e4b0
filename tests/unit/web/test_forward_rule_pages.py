"""The forwarding rules edited in the console (A7): only administrators add, change and remove a
rule; each change goes to the console layer, is in force after the reload (what the routing reads)
and is recorded as a security configuration change; refusals of the schema come back next to the
field, nothing written; a page shown before another change saves nothing."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from console_client import Events, csrf_token
from flask.testing import FlaskClient

from appliance.accounts.roles import Role
from appliance.config import Settings, development_config
from appliance.forward.rules import InstanceFacts, destinations

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
RULE = {"name": "Scanners vers le PACS régional", "destination": "ORTHANC", "enabled": "y",
        "calling_ae_titles": "CT_SALLE1, CT_*", "modalities": "CT", "sop_classes": "",
        "study_descriptions": "*THORAX*\nScanner*"}  # fmt: skip


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    """Development settings with two destinations and one rule of the console layer."""
    layer = tmp_path / "data" / "settings" / "console.yaml"
    layer.parent.mkdir(parents=True)
    layer.write_text(yaml.safe_dump({
        "peers": [{"ae_title": "ORTHANC", "host": "127.0.0.1", "port": 4242, "description": "PACS régional"},
                  {"ae_title": "SECOND_AVIS", "host": "127.0.0.1", "port": 4243}],
        "forward": {"rules": [{"name": "Tout vers le second avis", "destination": "SECOND_AVIS"}]},
    }, allow_unicode=True))  # fmt: skip
    return Settings(lambda: development_config(tmp_path / "data"))


@pytest.fixture()
def admin(logged_in: Callable[[Role], FlaskClient]) -> FlaskClient:
    return logged_in(Role.ADMINISTRATOR)


def send(client: FlaskClient, path: str, data: dict[str, str], form_page: str = "") -> str:
    """Post the form of `path` with its CSRF token; the page shown after, as a browser shows it."""
    token = csrf_token(client, form_page or path)
    answer = client.post(path, data={**data, "csrf_token": token}, follow_redirects=True)
    assert answer.status_code == 200
    return html.unescape(answer.get_data(as_text=True))


def errors_of(page: str, field: str) -> list[str]:
    found = re.search(rf'<ul class="errors" id="{field}-errors">(.*?)</ul>', page, re.S)
    return re.findall(r"<li>(.*?)</li>", found.group(1), re.S) if found else []


def console_rules(settings: Settings) -> list[dict[str, object]]:
    document = yaml.safe_load(settings.current.console_settings_file.read_text(encoding="utf-8"))
    return list(document["forward"]["rules"])


@pytest.mark.parametrize("role", [role for role in Role if role != Role.ADMINISTRATOR])
def test_only_the_administrator_edits_the_rules(logged_in: Callable[[Role], FlaskClient], role: Role) -> None:
    client = logged_in(role)
    for path in ("/forward/rules/new", "/forward/rules/1"):
        assert client.get(path).status_code == 403
        assert client.post(path, data=RULE).status_code in (400, 403)
    assert client.post("/forward/rules/1/remove", data={"original": "x"}).status_code in (400, 403)
    if role == Role.MAINTENANCE:  # sees the rules, without the buttons
        page = client.get("/forward").get_data(as_text=True)
        assert "Tout vers le second avis" in page and 'id="add-rule"' not in page and 'id="edit-rule-1"' not in page


def test_a_rule_added_is_saved_in_force_and_audited(admin: FlaskClient, settings: Settings, events: Events) -> None:
    page = html.unescape(admin.get("/forward").get_data(as_text=True))
    assert 'id="add-rule"' in page and 'id="edit-rule-1"' in page
    form = html.unescape(admin.get("/forward/rules/new").get_data(as_text=True))
    assert "Nouvelle règle de transfert" in form and "ORTHANC — PACS régional" in form
    page = send(admin, "/forward/rules/new", RULE)
    assert "Enregistré." in page and "Scanners vers le PACS régional" in page
    assert console_rules(settings)[1] == {"name": "Scanners vers le PACS régional", "destination": "ORTHANC",
                                          "calling_ae_titles": ["CT_SALLE1", "CT_*"], "modalities": ["CT"],
                                          "study_descriptions": ["*THORAX*", "Scanner*"]}  # fmt: skip
    rules = settings.current.forward.rules  # in force in the console, as in the worker after its reload
    facts = InstanceFacts("CT_SALLE2", "CT", CT_IMAGE, "Scanner thoracique")
    assert destinations(rules, facts) == ["SECOND_AVIS", "ORTHANC"]
    (event,) = events.of("110113")
    assert event.event_type is not None and event.event_type.code == "110129"
    assert event.objects[0].details == (("changed", "forward.rules"),)


def test_a_rule_with_no_criterion_sends_everything(admin: FlaskClient, settings: Settings) -> None:
    send(admin, "/forward/rules/new", {"name": "Tout vers le PACS", "destination": "ORTHANC", "enabled": "y"})
    assert console_rules(settings)[1] == {"name": "Tout vers le PACS", "destination": "ORTHANC"}
    facts = InstanceFacts("ECHO_1", "US", "1.2.840.10008.5.1.4.1.1.6.1", "")
    assert "ORTHANC" in destinations(settings.current.forward.rules, facts)


def test_refusals_are_shown_next_to_their_fields_and_nothing_is_written(
    admin: FlaskClient, settings: Settings, events: Events
) -> None:
    before = settings.current.console_settings_file.read_text(encoding="utf-8")
    page = send(admin, "/forward/rules/new", {**RULE, "destination": "NOBODY", "sop_classes": "image CT"})
    assert errors_of(page, "destination") == ["'NOBODY' is not a configured peer"]
    assert errors_of(page, "sop_classes") and "does not match" in errors_of(page, "sop_classes")[0]
    assert errors_of(page, "name") == []
    page = send(admin, "/forward/rules/new", {**RULE, "name": ""})
    assert errors_of(page, "name")
    assert settings.current.console_settings_file.read_text(encoding="utf-8") == before
    assert events.of("110113") == []


def test_a_rule_changed_then_removed(admin: FlaskClient, settings: Settings, events: Events) -> None:
    form = html.unescape(admin.get("/forward/rules/1").get_data(as_text=True))
    assert 'value="Tout vers le second avis"' in form and 'id="enabled"' in form
    changed = {
        "name": "Scanners vers le second avis",
        "destination": "SECOND_AVIS",
        "modalities": "CT, MR",
        "original": "Tout vers le second avis",
    }  # fmt: skip  (no "enabled": unticked)
    send(admin, "/forward/rules/1", changed)
    (rule,) = settings.current.forward.rules
    assert (rule.name, rule.enabled, rule.modalities) == ("Scanners vers le second avis", False, ("CT", "MR"))
    page = send(admin, "/forward/rules/1/remove", {"original": "Scanners vers le second avis"}, "/forward")
    assert settings.current.forward.rules == () and console_rules(settings) == []
    assert "Aucune règle de transfert." in page
    assert len(events.of("110113")) == 2
    assert admin.get("/forward/rules/1").status_code == 404


def test_a_page_shown_before_another_change_saves_nothing(admin: FlaskClient, settings: Settings) -> None:
    page = send(admin, "/forward/rules/1/remove", {"original": "Une règle renommée depuis"}, "/forward")
    assert "Les règles ont changé" in page
    page = send(admin, "/forward/rules/1", {**RULE, "original": "Une règle renommée depuis"})
    assert "Les règles ont changé" in page
    assert [rule.name for rule in settings.current.forward.rules] == ["Tout vers le second avis"]
