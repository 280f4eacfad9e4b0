"""Integrity commands on a real archive (Q1), and the daemon's life cycle under systemd's protocol."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

from servers import Daemon, archive_config, cli, launcher, run, write_config


def stored_archive(tmp_path: Path, samples: dict[str, list[Path]]) -> Daemon:
    config_path = write_config(tmp_path / "a.yaml", archive_config(tmp_path / "data", 1))
    daemon = Daemon("appliance.daemons.archive", config_path, tmp_path / "log").start()
    files = [str(path) for modality in ("CT", "MR", "US") for path in samples[modality]]
    run(["storescu", "-aec", "APPLIANCE", "127.0.0.1", str(daemon.port), *files])
    daemon.stop()
    return daemon


def test_verify_reports_missing_altered_and_orphan_files(tmp_path: Path, samples: dict[str, list[Path]]) -> None:
    daemon = stored_archive(tmp_path, samples)
    assert "checked 9 file(s): 0 missing, 0 altered, 0 orphan(s)" in cli(daemon.config_path, "archive", "verify").stdout
    files = sorted((tmp_path / "data" / "archive").rglob("*.dcm"))
    files[0].unlink()
    with open(files[1], "r+b") as altered:
        altered.seek(-10, 2)
        altered.write(b"0123456789")
    shutil.copy(samples["CT"][0], files[2].parent / "stray.dcm")  # a second copy of an archived instance
    result = cli(daemon.config_path, "archive", "verify", check=False)
    assert result.returncode == 1
    assert "1 missing, 1 altered, 1 orphan(s)" in result.stdout
    assert f"missing: {files[0].relative_to(tmp_path / 'data' / 'archive')}" in result.stdout
    adopted = cli(daemon.config_path, "archive", "verify", "--adopt-orphans", check=False).stdout
    assert "adopted 0 orphan(s); set aside 1 in quarantine/" in adopted  # the stray copy is a known instance
    assert "0 orphan(s)" in cli(daemon.config_path, "archive", "verify", check=False).stdout


def test_orphans_of_an_interrupted_ingest_are_adopted(tmp_path: Path, samples: dict[str, list[Path]]) -> None:
    daemon = stored_archive(tmp_path, samples)
    day = next((tmp_path / "data" / "archive").glob("*/*/*"))
    shutil.copy(samples["DX"][0], day / "written-but-never-indexed.dcm")
    assert "adopted 1 orphan(s)" in cli(daemon.config_path, "archive", "verify", "--adopt-orphans").stdout
    assert "instances           10" in cli(daemon.config_path, "archive", "stats").stdout


def test_reindex_rebuilds_the_index_from_the_files(tmp_path: Path, samples: dict[str, list[Path]]) -> None:
    daemon = stored_archive(tmp_path, samples)
    before = cli(daemon.config_path, "archive", "stats").stdout
    (tmp_path / "data" / "index" / "appliance.sqlite").unlink()
    for leftover in (tmp_path / "data" / "index").glob("appliance.sqlite-*"):
        leftover.unlink()
    assert "indexed 9 file(s); 0 unreadable" in cli(daemon.config_path, "archive", "reindex").stdout
    after = cli(daemon.config_path, "archive", "stats").stdout
    for line in ("patients", "studies", "series", "instances"):
        assert next(row for row in before.splitlines() if row.startswith(line)) in after
    assert "0 missing, 0 altered, 0 orphan(s)" in cli(daemon.config_path, "archive", "verify").stdout


def test_ready_and_stopping_are_notified_and_sigterm_exits_cleanly(tmp_path: Path) -> None:
    notify_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(60)
    config_path = write_config(tmp_path / "a.yaml", archive_config(tmp_path / "data", 1))
    daemon = Daemon(
        "appliance.daemons.archive", config_path, tmp_path / "log", environment={"NOTIFY_SOCKET": str(notify_path)}
    )
    daemon.start()
    ready = listener.recv(4096).decode()
    assert ready.startswith("READY=1")
    run(["echoscu", "-aec", "APPLIANCE", "127.0.0.1", str(daemon.port)])  # bound before READY
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(timeout=60) == 0
    assert listener.recv(4096).decode() == "STOPPING=1"
    listener.close()
    assert "DICOM archive APPLIANCE stopped" in daemon.log()


def test_bad_configuration_stops_the_daemon_with_file_and_key(tmp_path: Path) -> None:
    config_path = tmp_path / "bad.yaml"
    config_path.write_text("dicom:\n  port: -4\n")
    completed = subprocess.run(
        [sys.executable, "-c", launcher("appliance.daemons.archive"), "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert f"{config_path}: dicom.port: -4 is less than the minimum of 0" in completed.stderr


def count_rows(config_path: Path) -> dict[str, int]:
    from sqlalchemy import func, select

    from appliance.config import load_config
    from appliance.db import create_index_engine, schema

    tables = ("patient", "patient_identity", "patient_identifier", "identity_change", "scheduled_step",
              "performed_step", "study", "series", "instance")  # fmt: skip
    engine = create_index_engine(load_config(config_path).database_url)
    with engine.connect() as connection:
        counts = {
            name: int(connection.scalar(select(func.count()).select_from(getattr(schema, name))) or 0)
            for name in tables
        }
    engine.dispose()
    return counts


def test_reindex_keeps_patients_orders_mpps_and_the_audit_trail(tmp_path: Path) -> None:
    """On a live index: instances come back from the files, everything from the RIS and people stays,
    and the study stays with the patient it was reconciled to."""
    from datagen import PATIENTS, write_series
    from pydicom import dcmread
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from sqlalchemy import select
    from worklist_data import new_order, schedule

    from appliance.config import load_config
    from appliance.db import create_index_engine, upgrade_schema
    from appliance.db.schema import patient, study
    from appliance.patients.identities import Identifier, IdentityPolicy, PatientIdentity, Source, record_patient
    from appliance.worklist import performed

    config_path = write_config(tmp_path / "a.yaml", archive_config(tmp_path / "data", 1))
    config = load_config(config_path)
    engine = create_index_engine(config.database_url)
    upgrade_schema(engine, config.storage.index_directory)
    identity = PatientIdentity(Identifier("IPP-RIS", "CABINET"), birth_name="DUPONT", first_given_name="Jean",
                               sex="M", birth_date="19750203", identity_status=("VALI",))  # fmt: skip
    with engine.begin() as connection:
        patient_pk = record_patient(connection, identity, Source("RIS", "CAB", "ADT^A28", "1"), IdentityPolicy(False))
    schedule(engine, config, new_order(1, "CT", "CT_SALLE1"), patient_pk.patient_pk or 0)
    step = Dataset()
    step.PerformedProcedureStepStatus = "IN PROGRESS"
    scheduled = Dataset()
    scheduled.AccessionNumber = "ACC00001"
    step.ScheduledStepAttributesSequence = Sequence([scheduled])
    performed.create(engine, "1.2.826.0.1.3680043.10.1471.77.1", step, "CT_SALLE1")
    engine.dispose()
    ordered = write_series(tmp_path / "ordered", 2, "CT", PATIENTS[1], accession_number="ACC00001")
    unordered = write_series(tmp_path / "unordered", 1, "MR", PATIENTS[3], accession_number="OTHER")
    daemon = Daemon("appliance.daemons.archive", config_path, tmp_path / "log").start()
    try:
        run(["storescu", "-aec", "APPLIANCE", "127.0.0.1", str(daemon.port), *map(str, ordered + unordered)])
        refused = cli(config_path, "archive", "reindex", check=False)
        assert refused.returncode == 2 and "stop them first" in refused.stderr
    finally:
        daemon.stop()
    unordered_uid = dcmread(unordered[0]).StudyInstanceUID
    cli(config_path, "archive", "attach", unordered_uid, "--patient-id", "IPP-RIS", "--issuer", "CABINET")
    before = count_rows(config_path)
    assert before["patient"] == 2 and before["performed_step"] == 1 and before["identity_change"] == 2
    assert "indexed 3 file(s); 0 unreadable" in cli(config_path, "archive", "reindex").stdout
    after = count_rows(config_path)
    assert after == {**before, "patient": 1}  # the patient only the attached study referred to is gone
    # Still with the patient it was attached to, not the file's IPP0004 (and, attached by hand, no
    # longer waiting to be reconciled).
    assert unordered_uid not in cli(config_path, "archive", "unreconciled").stdout
    engine = create_index_engine(config.database_url)
    with engine.connect() as connection:
        owner = connection.scalar(
            select(patient.c.patient_id)
            .join(study, study.c.patient_pk == patient.c.id)
            .where(study.c.study_instance_uid == unordered_uid)
        )
    engine.dispose()
    assert owner == "IPP-RIS"


def test_sighup_reloads_the_peers_without_dropping_associations(tmp_path: Path) -> None:
    import yaml
    from datagen import PATIENTS, make_instance
    from dicom_wire import rejection
    from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]
    from servers import associate, wait_for

    config = archive_config(tmp_path / "data", 1)
    config_path = write_config(tmp_path / "a.yaml", config)
    daemon = Daemon("appliance.daemons.archive", config_path, tmp_path / "log").start()
    assert daemon.process is not None
    try:
        held = associate(daemon.port, Verification, CTImageStorage, ae_title="STORESCU")
        assert rejection(daemon.port, "NEWCOMER") == (1, 1, 3)  # calling AE title not recognised
        config["peers"].append({"ae_title": "NEWCOMER", "host": "127.0.0.1", "rights": ["store"]})
        config["dicom"]["port"] = 104
        config_path.write_text(yaml.safe_dump(config))
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in daemon.log(), "the reload")
        assert "applied only at the next restart: dicom.port" in daemon.log()
        newcomer = associate(daemon.port, CTImageStorage, ae_title="NEWCOMER")
        assert newcomer.send_c_store(make_instance("CT", PATIENTS[0])).Status == 0x0000
        newcomer.release()
        assert held.send_c_echo().Status == 0x0000  # opened before the reload, still there
        held.release()
        config_path.write_text("dicom:\n  port: -4\n")
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "configuration not reloaded" in daemon.log(), "the refused reload")
        assert f"{config_path}: dicom.port: -4 is less than the minimum of 0" in daemon.log()
        still = associate(daemon.port, Verification, ae_title="NEWCOMER")
        assert still.send_c_echo().Status == 0x0000  # the configuration in force stayed
        still.release()
    finally:
        daemon.stop()


def test_compress_all_while_the_worker_compresses(tmp_path: Path) -> None:
    """`archive compress --all` and the background worker take turns on the compression lock: no
    crash, every image compressed once, every file intact."""
    from datagen import write_series
    from servers import wait_for

    config_path = write_config(tmp_path / "a.yaml", archive_config(tmp_path / "data", 1))
    archive = Daemon("appliance.daemons.archive", config_path, tmp_path / "dicom.log").start()
    worker = Daemon("appliance.daemons.worker", config_path, tmp_path / "worker.log").start()
    try:
        series = write_series(tmp_path / "ct", 24, "CT")
        run(["storescu", "-aec", "APPLIANCE", "127.0.0.1", str(archive.port), *map(str, series)])
        compressed = cli(config_path, "archive", "compress", "--all")
        assert "Traceback" not in compressed.stderr and "failed verification 0" in compressed.stdout
        wait_for(lambda: "compressed        24" in cli(config_path, "archive", "stats").stdout, "24 compressed")
    finally:
        worker.stop()
        archive.stop()
    assert "Traceback" not in (tmp_path / "worker.log").read_text()
    assert "checked 24 file(s): 0 missing, 0 altered, 0 orphan(s)" in cli(config_path, "archive", "verify").stdout
