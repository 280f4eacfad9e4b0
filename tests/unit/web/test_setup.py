"""The setup pages: each step saved through the test client (values in force after `Settings.reload()`,
refusals next to their field in the loader's own words), modalities with their worklist models and
previews, the reload of running daemons, the audit records, and who may open the pages."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from console_client import Events, csrf_token
from flask.testing import FlaskClient

from appliance.accounts.roles import Role
from appliance.config import Settings

STEPS = ["/setup/practice", "/setup/archive", "/setup/ris", "/setup/mail", "/setup/backup"]
PAGES = ["/setup", "/setup/summary", "/setup/modalities", "/setup/modality", *STEPS]


@pytest.fixture()
def admin(logged_in: Callable[[Role], FlaskClient]) -> FlaskClient:
    return logged_in(Role.ADMINISTRATOR)


def post(client: FlaskClient, path: str, data: dict[str, object], form_page: str = "") -> str:
    """Send the form of `path` (shown on `form_page`, else on `path`); the page shown after."""
    token = csrf_token(client, form_page or path)
    answer = client.post(path, data={**data, "csrf_token": token}, follow_redirects=True)
    assert answer.status_code == 200
    return answer.get_data(as_text=True)


def errors_of(page: str, field: str) -> list[str]:
    """The errors shown next to `field` (its `<ul class="errors">`)."""
    found = re.search(rf'<ul class="errors" id="{field}-errors">(.*?)</ul>', page, re.S)
    return re.findall(r"<li>(.*?)</li>", found.group(1), re.S) if found else []


def console_file(settings: Settings) -> dict[str, object]:
    loaded = yaml.safe_load(settings.current.console_settings_file.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.mark.parametrize("role", [role for role in Role if role != Role.ADMINISTRATOR])
def test_only_the_administrator_opens_the_setup_pages(logged_in: Callable[[Role], FlaskClient], role: Role) -> None:
    client = logged_in(role)
    assert all(client.get(path).status_code == 403 for path in PAGES)
    assert client.post("/setup/practice", data={"site_name": "X"}).status_code in (400, 403)


def test_the_administrator_sees_every_step_and_the_progress(admin: FlaskClient) -> None:
    for path in PAGES:
        assert admin.get(path).status_code == 200, path
    page = admin.get("/setup/ris").get_data(as_text=True)
    assert 'id="step-4" href="/setup/ris" aria-current="step"' in page
    assert 'id="previous" href="/setup/modalities"' in page


def test_practice_saved_reloaded_audited_and_next_step_shown(
    admin: FlaskClient, settings: Settings, events: Events
) -> None:
    page = post(admin, "/setup/practice", {"site_name": "Cabinet des Tilleuls", "action": "next"})
    assert 'id="step-2" href="/setup/archive" aria-current="step"' in page  # on to the next step
    assert settings.current.site_name == "Cabinet des Tilleuls"  # the console's own settings reloaded
    assert Settings(settings.load).current.site_name == "Cabinet des Tilleuls"  # and on disk
    assert "Aucun service ne tourne" in page
    alerts = events.of("110113")
    assert len(alerts) == 1
    assert alerts[0].action == "E" and alerts[0].event_type.code == "110131"  # type: ignore[union-attr]
    (settings_object,) = alerts[0].objects
    assert settings_object.kind == "security-resource" and settings_object.details == (("changed", "site_name"),)
    assert alerts[0].requestor.user_id == "user-administrator"  # type: ignore[union-attr]


def test_a_refusal_is_shown_next_to_its_field_in_the_words_of_config_check(
    admin: FlaskClient, settings: Settings, events: Events
) -> None:
    page = post(admin, "/setup/archive", {"ae_title": "ARCHIVE_DU_CABINET_DU_PARC", "worklist_ae_title": "MWL"})
    assert errors_of(page, "ae_title") == [
        "AE title longer than 16 characters (&#39;ARCHIVE_DU_CABINET_DU_PARC&#39; has 26)"
    ]
    assert errors_of(page, "worklist_ae_title") == []
    assert settings.current.dicom.ae_title == "APPLIANCE"
    assert not settings.current.console_settings_file.exists()
    assert events.of("110113") == []


def test_the_archive_ae_title_waits_for_a_restart_and_says_so(admin: FlaskClient, settings: Settings) -> None:
    page = admin.get("/setup/archive").get_data(as_text=True)
    assert '<dd id="dicom-port">11112</dd>' in page and "redémarrage" in page
    page = post(admin, "/setup/archive", {"ae_title": "PACS_PARC", "worklist_ae_title": "PACS_MWL"})
    assert "dicom.ae_title, worklist.ae_title" in page
    assert console_file(settings)["dicom"] == {"ae_title": "PACS_PARC"}


def test_ris_mail_and_backup_steps(admin: FlaskClient, settings: Settings) -> None:
    post(
        admin,
        "/setup/ris",
        {
            "accepted_sending_facilities": "CAB-X, CAB-Y",
            "patient_id_authority": "RIS-CAB-X",
            "ris_host": "192.168.10.5",
            "ris_port": "2576",
            "ris_application": "XPLORE",
            "ris_facility": "CAB-X",
        },
    )
    post(
        admin,
        "/setup/mail",
        {
            "relay_host": "smtp.cabinet.lan",
            "relay_port": "587",
            "sender": "pacs@cabinet.example.fr",
            "recipients": "secretariat@cabinet.example.fr\nmaintenance@prestataire.example.fr",
        },
    )
    post(admin, "/setup/backup", {"repository": "/media/backup/appliance", "time": "03:15"})
    config = settings.current
    assert config.hl7.accepted_sending_facilities == {"CAB-X", "CAB-Y"}
    assert (config.hl7.ris.host, config.hl7.ris.port, config.hl7.ris.application) == ("192.168.10.5", 2576, "XPLORE")
    assert config.mail.recipients == ("secretariat@cabinet.example.fr", "maintenance@prestataire.example.fr")
    assert (config.backup.repository, config.backup.time) == ("/media/backup/appliance", "03:15")
    summary = admin.get("/setup/summary").get_data(as_text=True)
    assert "192.168.10.5:2576" in summary and "/media/backup/appliance, 03:15" in summary


def test_bad_values_of_the_last_steps_are_refused_next_to_their_fields(admin: FlaskClient) -> None:
    page = post(admin, "/setup/ris", {"ris_host": "ris..cabinet", "ris_port": "70000", "ris_application": "RIS"})
    assert errors_of(page, "ris_host") == ["&#39;ris..cabinet&#39; is neither an IP address nor a valid host name"]
    assert errors_of(page, "ris_port") == ["70000 is greater than the maximum of 65535"]
    page = post(admin, "/setup/backup", {"repository": "", "time": "25:00"})
    assert len(errors_of(page, "time")) == 1 and "does not match" in errors_of(page, "time")[0]
    page = post(admin, "/setup/mail", {"relay_host": "", "relay_port": "vingt-cinq", "recipients": ""})
    assert errors_of(page, "relay_port")  # not a number: the form says so before the schema


def test_a_modality_with_a_worklist_model_and_its_preview(
    admin: FlaskClient, settings: Settings, events: Events
) -> None:
    page = admin.get("/setup/modality").get_data(as_text=True)
    assert "COEUR-DE-LION^Éléonore^Marie-Hélène^Mme" in page  # Latin-1: the ligature spelled out
    assert "CŒUR-DE-LION^Éléonore^Marie-Hélène^Mme" in page  # UTF-8
    assert "IPP-2026-0001234<" in page  # the GE unit's 16 characters
    form = {
        "ae_title": "ECHO_SALLE2",
        "host": "192.168.10.42",
        "port": "104",
        "rights": ["store", "worklist"],
        "description": "Échographe salle 2",
        "model": "ge-voluson",
    }
    page = post(admin, "/setup/modality", form)
    assert "ECHO_SALLE2" in page and "Échographe GE Voluson" in page
    config = settings.current
    peer = config.peer("ECHO_SALLE2")
    assert peer is not None and peer.rights == {"store", "worklist"}
    profile = config.worklist.profile_for("ECHO_SALLE2")
    assert (profile.character_set, profile.patient_id_max_length) == ("ISO_IR 100", 16)
    assert [peer.ae_title for peer in config.peers] == ["STORESCP", "ECHO_SALLE2"]  # the others kept
    (alert,) = events.of("110113")
    assert alert.event_type.code == "110129"  # type: ignore[union-attr]  # Security Configuration
    assert alert.objects[0].details == (("changed", "peers"), ("changed", "worklist.profiles"))
    edit = admin.get("/setup/modality?ae_title=ECHO_SALLE2").get_data(as_text=True)
    assert 'id="preview-ge-voluson" aria-current="true"' in edit


def test_a_modality_renamed_and_then_removed_takes_its_profile_along(admin: FlaskClient, settings: Settings) -> None:
    form = {"ae_title": "MAMMO", "host": "10.0.0.7", "port": "104", "rights": ["worklist"], "model": "old-mammography"}
    post(admin, "/setup/modality", form)
    post(admin, "/setup/modality?ae_title=MAMMO", {**form, "ae_title": "MAMMO_2"})
    config = settings.current
    assert config.peer("MAMMO") is None and config.peer("MAMMO_2") is not None
    assert [profile.ae_title for profile in config.worklist.profiles] == ["MAMMO_2"]
    post(admin, "/setup/modality/remove", {"ae_title": "MAMMO_2"}, form_page="/setup/modalities")
    assert settings.current.peer("MAMMO_2") is None and settings.current.worklist.profiles == ()


def test_a_bad_modality_is_refused_next_to_its_fields(admin: FlaskClient, settings: Settings) -> None:
    form = {"ae_title": "APPLIANCE", "host": "10.0.0.300", "port": "104", "rights": ["store"], "model": ""}
    page = post(admin, "/setup/modality", form)
    assert errors_of(page, "ae_title") == ["&#39;APPLIANCE&#39; is the archive&#39;s own AE title"]
    assert errors_of(page, "host") == ["&#39;10.0.0.300&#39; is neither an IP address nor a valid host name"]
    page = post(admin, "/setup/modality", {**form, "ae_title": "STORESCP", "host": "10.0.0.3"})
    assert errors_of(page, "ae_title") == ["&#39;STORESCP&#39; is listed twice"]
    assert [peer.ae_title for peer in settings.current.peers] == ["STORESCP"]
    assert admin.get("/setup/modality?ae_title=NOBODY").status_code == 404


# A daemon in miniature: its PID file, SIGHUP counted as a reload (as appliance.daemons.runtime does).
CHILD = """
import sys
from pathlib import Path
from appliance import systemd
signals = systemd.Signals()
signals.install()
path = systemd.write_pid_file(Path(sys.argv[1]), "appliance-worklist")
print("running", flush=True)
while not signals.stopping:
    signals.wait(5)
    if signals.take_reload():
        Path(sys.argv[2]).write_text("SIGHUP")
        systemd.mark_reloaded(path)
systemd.remove_pid_file(path)
"""


@pytest.fixture()
def daemon(settings: Settings, tmp_path: Path) -> Iterator[Path]:
    record = tmp_path / "reloaded.txt"
    run = settings.current.storage.run_directory
    process = subprocess.Popen([sys.executable, "-c", CHILD, str(run), str(record)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "running"
    yield record
    process.terminate()
    process.wait(timeout=10)


def test_a_saved_step_reloads_the_running_daemons(admin: FlaskClient, daemon: Path) -> None:
    page = post(admin, "/setup/practice", {"site_name": "Cabinet du Parc"})
    assert daemon.read_text() == "SIGHUP"
    assert "En vigueur dès maintenant dans : appliance-worklist." in page


def test_the_first_visit_leads_to_the_setup(client: FlaskClient) -> None:
    token = csrf_token(client, "/first-visit")
    data = {"full_name": "Anne Admin", "username": "anne", "password": "Correct-Horse-42"}
    answer = client.post("/first-visit", data={**data, "confirmation": data["password"], "csrf_token": token})
    assert answer.headers["Location"].endswith("/setup")
    assert 'id="begin"' in client.get("/setup").get_data(as_text=True)
