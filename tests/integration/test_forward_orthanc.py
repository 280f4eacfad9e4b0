"""Forwarding and priors against a real remote PACS nobody here wrote: Orthanc (A7, issue 12).

The real daemons (archive, worker, HL7) run on loopback with a forwarding rule to Orthanc, which is
also a remote archive the box queries and retrieves from:
- a study forwarded while Orthanc is down waits in its queue, and arrives once, bytes and French
  names intact, when Orthanc comes up; sending the study again queues nothing;
- the console's search path (a search row the worker serves by C-FIND) finds a study at Orthanc,
  and a fetch brings it into the archive by C-MOVE;
- an HL7 order fetches the patient's previous CT from Orthanc (not the MR, not the one too old).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from datagen import PATIENTS, write_series
from hl7_client import MllpClient, ack_code
from orthanc import Orthanc, needs_orthanc
from pydicom import dcmread
from servers import Daemon, archive_config, free_port, run, wait_for, write_config
from sqlalchemy import Engine, func, select

from appliance.archive.changes import cursor_of
from appliance.config import load_config
from appliance.db import create_index_engine
from appliance.db.schema import change, outbox, study
from appliance.forward import remote

pytestmark = needs_orthanc


@dataclass
class Site:
    """The box's daemons, its index, and Orthanc (started or not)."""

    work: Path
    archive: Daemon
    worker: Daemon
    engine: Engine
    orthanc: Orthanc
    config_path: Path


def site_config(work: Path, archive_port: int, orthanc: Orthanc) -> dict[str, object]:
    config = archive_config(
        work / "data",
        free_port(),
        dicom={"ae_title": "APPLIANCE", "bind_address": "127.0.0.1", "port": archive_port},
        lossless={"enabled": False},
        hl7={"bind_address": "127.0.0.1", "port": 0},
        forward={
            "rules": [{"name": "Scanners vers le PACS régional", "destination": "ORTHANC", "modalities": ["CT"]}],
            "retry_initial_seconds": 1,
            "retry_maximum_seconds": 2,
            "batch_size": 8,
            "prefetch": [{"modality": "CT", "years_back": 5, "maximum_studies": 3}],
        },
    )
    peers = list(config["peers"])
    peers.append({"ae_title": "ORTHANC", "host": "127.0.0.1", "port": orthanc.dicom_port,
                  "rights": ["store"], "remote_archive": True})  # fmt: skip
    config["peers"] = peers
    return config


@pytest.fixture()
def site(tmp_path: Path) -> Iterator[Site]:
    archive_port = free_port()
    orthanc = Orthanc(tmp_path / "orthanc", modalities={"APPLIANCE": ("APPLIANCE", archive_port)})
    config_path = write_config(tmp_path / "appliance.yaml", site_config(tmp_path, archive_port, orthanc))
    archive = Daemon("appliance.daemons.archive", config_path, tmp_path / "archive.log").start()
    worker = Daemon("appliance.daemons.worker", config_path, tmp_path / "worker.log").start()
    engine = create_index_engine(load_config(config_path).database_url)
    try:
        yield Site(tmp_path, archive, worker, engine, orthanc, config_path)
    finally:
        worker.stop()
        archive.stop()
        orthanc.stop()
        engine.dispose()


def forward_messages(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as connection:
        rows = connection.execute(select(outbox).where(outbox.c.channel == "forward:ORTHANC").order_by(outbox.c.id))
        return [dict(row._mapping) for row in rows]


def store(site: Site, files: list[Path]) -> None:
    run(["storescu", "-aec", "APPLIANCE", "-aet", "STORESCU", "127.0.0.1", str(site.archive.port), *map(str, files)])


def test_a_study_forwarded_while_orthanc_is_down_arrives_once_and_intact(site: Site) -> None:
    files = write_series(site.work / "ct", 12, "CT", PATIENTS[0])  # ŒUVRARD^Chloé, ISO_IR 192
    store(site, files)
    wait_for(lambda: len(forward_messages(site.engine)) == 12, "12 instances queued for Orthanc")
    wait_for(lambda: forward_messages(site.engine)[0]["attempts"] >= 2, "the queue tried Orthanc and waits")
    assert all(message["status"] == "pending" for message in forward_messages(site.engine))
    assert "no association with ORTHANC" in str(forward_messages(site.engine)[0]["last_error"])

    site.orthanc.start()
    wait_for(lambda: all(message["status"] == "delivered" for message in forward_messages(site.engine)),
             "every instance delivered")  # fmt: skip
    held = site.orthanc.instances()
    originals = {str(dcmread(path).SOPInstanceUID): dcmread(path) for path in files}
    assert set(held) == set(originals) and site.orthanc.statistics()["CountInstances"] == 12
    for uid, original in originals.items():
        arrived = dcmread(io.BytesIO(site.orthanc.file(held[uid])))
        assert arrived.PixelData == original.PixelData
        assert str(arrived.PatientName) == "ŒUVRARD^Chloé"
        assert arrived.SpecificCharacterSet == "ISO_IR 192"

    store(site, files)  # the same study again: nothing more is queued
    last = last_change(site.engine)
    wait_for(lambda: forward_cursor(site.engine) >= last, "the forwarding rules read the second sending")
    assert len(forward_messages(site.engine)) == 12


def last_change(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.max(change.c.id))).scalar() or 0)


def forward_cursor(engine: Engine) -> int:
    with engine.connect() as connection:
        return cursor_of(connection, "forward")


def archived_instances(engine: Engine, study_uid: str) -> int:
    statement = select(study.c.number_of_instances).where(study.c.study_instance_uid == study_uid)
    with engine.connect() as connection:
        return int(connection.execute(statement).scalar() or 0)


def upload_prior(site: Site, name: str, count: int, modality: str, patient_index: int, study_date: str,
                 description: str) -> str:  # fmt: skip
    files = write_series(site.work / name, count, modality, PATIENTS[patient_index], study_date=study_date,
                         accession_number=name[:16])  # fmt: skip
    for path in files:
        dataset = dcmread(path)
        dataset.StudyDescription = description
        dataset.save_as(path, enforce_file_format=True)
        site.orthanc.upload(path)
    return str(dcmread(files[0]).StudyInstanceUID)


def test_a_search_from_the_console_finds_a_study_at_orthanc_and_a_fetch_brings_it(site: Site) -> None:
    site.orthanc.start()
    prior = upload_prior(site, "PRIOR1", 5, "CT", 1, "20230115", "Scanner thorax")  # DUPONT^Jean-François
    search = remote.submit(site.engine, "ORTHANC", {"PatientID": "IPP0002"}, "test")
    wait_for(lambda: (found := remote.get(site.engine, search)) is not None and found.finished, "the search served")
    answered = remote.get(site.engine, search)
    assert answered is not None and answered.state == remote.DONE, answered
    (answer,) = answered.answers
    assert answer["StudyInstanceUID"] == prior and answer["PatientName"] == "DUPONT^Jean-François"
    assert answer["NumberOfStudyRelatedInstances"] == "5" and answer["StudyDate"] == "20230115"

    assert remote.fetch_study(site.engine, "ORTHANC", remote.Fetch(prior, "IPP0002", "console"))
    assert not remote.fetch_study(site.engine, "ORTHANC", remote.Fetch(prior, "IPP0002", "console"))  # once
    wait_for(lambda: archived_instances(site.engine, prior) == 5, "the prior fetched into the archive")
    # fetched priors are not forwarded back to where they came from
    assert forward_messages(site.engine) == []


ORDER = (
    "MSH|^~\\&|RIS|CAB-X|PACS|CAB-X|{now}||ORM^O01|MSGPF{number}|P|2.5|||||FRA|UNICODE UTF-8\r"
    "PID|1||IPP0004^^^CABINET^PI||MARTIN^Noël||19520101|M\r"
    "PV1|1|O\r"
    "ORC|NW|PLCPF{number}|ACCPF{number}||SC||^^^{now}\r"
    "OBR|1|PLCPF{number}|ACCPF{number}|TDM^Scanner thorax^LOCAL||||||||||||||ACCPF{number}|RPPF{number}|"
    "SPSPF{number}||||CT\r"
)


def prefetch_channels(engine: Engine) -> dict[str, str]:
    with engine.connect() as connection:
        channels = dict(connection.execute(select(outbox.c.cause, outbox.c.status).where(
            outbox.c.channel.in_(["prefetch:ORTHANC", "retrieve:ORTHANC"]))).all())  # fmt: skip
    return channels


def test_an_order_from_the_ris_fetches_the_previous_ct_from_orthanc(site: Site) -> None:
    site.orthanc.start()
    this_year = date.today().year
    previous = upload_prior(site, "PREVCT", 4, "CT", 3, f"{this_year - 2}0310", "Scanner thorax")
    upload_prior(site, "PREVMR", 3, "MR", 3, f"{this_year - 1}0310", "IRM genou")  # another modality
    too_old = upload_prior(site, "OLDCT", 2, "CT", 3, f"{this_year - 9}0310", "Scanner thorax")
    hl7 = Daemon("appliance.daemons.hl7", site.config_path, site.work / "hl7.log").start()
    try:
        with MllpClient(hl7.port) as client:
            message = ORDER.format(now=date.today().strftime("%Y%m%d") + "0900", number=1)
            assert ack_code(client.send(message.encode("utf-8"))) == "AA"
    finally:
        hl7.stop()
    wait_for(lambda: archived_instances(site.engine, previous) == 4, "the previous CT fetched before the exam")
    # The images are stored while the C-MOVE runs; its final answer (and the queue's "delivered") comes after.
    wanted = {"order:1": "delivered", f"study:{previous}": "delivered"}
    wait_for(lambda: prefetch_channels(site.engine) == wanted, "the prefetch and its fetch recorded as delivered")
    with site.engine.connect() as connection:
        studies = {uid for (uid,) in connection.execute(select(study.c.study_instance_uid))}
    assert too_old not in studies and len(studies) == 1
