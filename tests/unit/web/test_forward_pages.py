"""The forwarding and remote-archive pages: queues per destination with the reason of what was set
aside and the retry (administrators), the search of a remote archive served by the worker's domain
functions, the fetch of a study found; permissions and audit events of each."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from console_client import Events, csrf_token
from flask.testing import FlaskClient
from sqlalchemy import Engine

from appliance.accounts.roles import Role
from appliance.config import Settings, development_config
from appliance.forward import queues, remote
from appliance.outbox import PARKED, PENDING, Attempt, Outcome, RetryPolicy, messages, next_due, record

STUDY = "1.2.826.0.1.3680043.10.1471.77"


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    """Development settings with Orthanc as a destination and a remote archive (console layer)."""
    layer = tmp_path / "data" / "settings" / "console.yaml"
    layer.parent.mkdir(parents=True)
    layer.write_text(yaml.safe_dump({
        "peers": [{"ae_title": "ORTHANC", "host": "127.0.0.1", "port": 4242, "remote_archive": True,
                   "description": "PACS régional"}],
        "forward": {"rules": [{"name": "Scanners vers le PACS régional", "destination": "ORTHANC",
                               "modalities": ["CT"]}]},
    }, allow_unicode=True))  # fmt: skip
    return Settings(lambda: development_config(tmp_path / "data"))


def shown(page: str) -> str:
    """The page's text as a browser shows it (entities decoded)."""
    return html.unescape(page)


def queue_two(engine: Engine) -> None:
    """Two instances waiting for ORTHANC, the first refused once and set aside."""
    with engine.begin() as connection:
        for number in (1, 2):
            queues.queue(connection, "ORTHANC", queues.Forwarded(f"{STUDY}.{number}", STUDY), "test")
    head = next_due(engine, ("forward",))
    assert head is not None
    record(engine, head, Attempt(Outcome.REFUSED, "ORTHANC answered status A700"), RetryPolicy(1, 1, 1))


def test_the_queues_show_what_waits_and_why_and_retry_now_is_recorded(
    engine: Engine, logged_in: Callable[[Role], FlaskClient], events: Events
) -> None:
    queue_two(engine)
    client = logged_in(Role.ADMINISTRATOR)
    page = client.get("/forward").get_data(as_text=True)
    assert 'data-destination="ORTHANC"' in page and "Scanners vers le PACS régional" in page
    page = client.get("/forward/ORTHANC").get_data(as_text=True)
    assert "ORTHANC answered status A700" in page and 'id="parked"' in page and 'id="pending"' in page
    assert "1 en attente, 1 mise(s) de côté." in page
    token = csrf_token(client, "/forward/ORTHANC")
    answer = client.post("/forward/ORTHANC/retry", data={"csrf_token": token})
    assert answer.status_code == 302
    assert len(messages(engine, PENDING, "forward:ORTHANC")) == 2 and messages(engine, PARKED) == []
    (event,) = events.of("110113")
    assert event.objects[0].object_id == "forward:ORTHANC" and event.event_type is not None
    assert event.event_type.code == "110132"


def test_maintenance_sees_the_queues_but_may_not_retry(
    engine: Engine, logged_in: Callable[[Role], FlaskClient]
) -> None:
    queue_two(engine)
    maintenance = logged_in(Role.MAINTENANCE)
    assert maintenance.get("/forward/ORTHANC").status_code == 200
    assert 'id="retry-now"' not in maintenance.get("/forward/ORTHANC").get_data(as_text=True)
    token = csrf_token(maintenance, "/forward/ORTHANC")
    assert maintenance.post("/forward/ORTHANC/retry", data={"csrf_token": token}).status_code == 403


def test_secretaries_search_remote_archives_but_see_no_queue(logged_in: Callable[[Role], FlaskClient]) -> None:
    secretary = logged_in(Role.SECRETARY)
    assert secretary.get("/forward").status_code == 403
    page = secretary.get("/priors").get_data(as_text=True)
    assert '<option value="ORTHANC">PACS régional</option>' in page or 'value="ORTHANC"' in page


def test_a_search_needs_a_patient_and_is_recorded_once_shown_with_its_keys(
    engine: Engine, logged_in: Callable[[Role], FlaskClient], events: Events
) -> None:
    client = logged_in(Role.SECRETARY)
    token = csrf_token(client, "/priors")
    refused = client.post("/priors", data={"csrf_token": token, "archive": "ORTHANC"})
    assert refused.status_code == 200 and "Indiquez l'IPP ou le nom du patient." in shown(
        refused.get_data(as_text=True)
    )
    assert remote.claim_next(engine) is None and events.of("110112") == []

    answer = client.post("/priors", data={"csrf_token": token, "archive": "ORTHANC", "patient_id": "IPP0001",
                                          "modality": "ct"})  # fmt: skip
    assert answer.status_code == 302
    query_id = int(answer.headers["Location"].rsplit("/", 1)[1])
    waiting = client.get(f"/priors/{query_id}").get_data(as_text=True)
    assert f'data-poll="/priors/{query_id}/state"' in waiting
    assert client.get(f"/priors/{query_id}/state").get_json()["finished"] is False
    assert events.of("110112") == []  # nothing of a patient shown yet
    answers = [{"StudyInstanceUID": STUDY, "PatientID": "IPP0001", "PatientName": "ŒUVRARD^Chloé"}]
    remote.finish(engine, query_id, answers)
    client.get(f"/priors/{query_id}")
    (event,) = events.of("110112")
    query, found = event.objects
    assert b'"PatientID": "IPP0001"' in query.query and b'"ModalitiesInStudy": "CT"' in query.query
    assert (found.object_id, found.name) == ("IPP0001", "ŒUVRARD^Chloé")


def test_the_answers_are_listed_and_a_study_found_is_fetched_once(
    engine: Engine, logged_in: Callable[[Role], FlaskClient], events: Events
) -> None:
    query_id = remote.submit(engine, "ORTHANC", {"PatientID": "IPP0001"}, "user-radiologist")
    claimed = remote.claim_next(engine)  # what the worker does, through the same functions
    assert claimed is not None and claimed.id == query_id
    answer = {"StudyInstanceUID": STUDY, "PatientID": "IPP0001", "PatientName": "ŒUVRARD^Chloé",
              "StudyDate": "20240115", "StudyDescription": "Scanner thorax", "ModalitiesInStudy": "CT",
              "NumberOfStudyRelatedInstances": "120"}  # fmt: skip
    remote.finish(engine, query_id, [answer])
    client = logged_in(Role.RADIOLOGIST)
    page = client.get(f"/priors/{query_id}").get_data(as_text=True)
    assert "ŒUVRARD Chloé" in page and "15/01/2024" in page and f'data-study="{STUDY}"' in page
    assert client.get(f"/priors/{query_id}/state").get_json()["finished"] is True
    token = csrf_token(client, f"/priors/{query_id}")
    for _ in range(2):
        fetched = client.post(f"/priors/{query_id}/fetch", data={"csrf_token": token, "study_instance_uid": STUDY})
        assert fetched.status_code == 302
    (queued,) = messages(engine, PENDING, "retrieve:ORTHANC")
    assert remote.fetch_of(queued.payload).study_instance_uid == STUDY
    transfers = events.of("110104")
    assert len(transfers) == 2 and transfers[0].objects[0].object_id == "IPP0001"
    assert client.post(f"/priors/{query_id}/fetch", data={"csrf_token": token, "study_instance_uid": "1.2.3"}
                       ).status_code == 404  # fmt: skip


def test_a_failed_search_says_why(engine: Engine, logged_in: Callable[[Role], FlaskClient]) -> None:
    query_id = remote.submit(engine, "ORTHANC", {"PatientID": "IPP0001"}, "someone")
    remote.finish(engine, query_id, None, "no association with ORTHANC at 127.0.0.1:4242")
    page = shown(logged_in(Role.TECHNOLOGIST).get(f"/priors/{query_id}").get_data(as_text=True))
    assert "n'a pas pu être interrogé : no association with ORTHANC" in page


def test_the_menu_marks_one_entry_the_current_one_though_two_share_a_blueprint(
    logged_in: Callable[[Role], FlaskClient],
) -> None:
    client = logged_in(Role.ADMINISTRATOR)
    for path, current in (("/forward", "/forward"), ("/priors", "/priors"), ("/", "/")):
        header = client.get(path).get_data(as_text=True).split("<main")[0]
        assert header.count('aria-current="page"') == 1, path
        assert f'<a href="{current}" aria-current="page">' in header, path
