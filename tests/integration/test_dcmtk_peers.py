"""The archive driven by DCMTK's own tools, as a modality or a viewer would (A1, A4, A6)."""

from __future__ import annotations

from pathlib import Path

import pytest
from datagen import PATIENTS, Patient, write_series
from pydicom import dcmread
from servers import Daemon, cli, get_study, listening, run, wait_for, wait_for_port

pytestmark = pytest.mark.usefixtures("archive")


def store(archive: Daemon, paths: list[Path], calling: str = "STORESCU") -> str:
    result = run(
        ["storescu", "-v", "-aet", calling, "-aec", "APPLIANCE", "127.0.0.1", str(archive.port), *map(str, paths)]
    )
    return result.stdout + result.stderr


def find(archive: Daemon, directory: Path, *keys: str, model: str = "-S", calling: str = "FINDSCU") -> list:
    directory.mkdir(parents=True, exist_ok=True)
    arguments = ["findscu", model, "-aet", calling, "-aec", "APPLIANCE", "-X", "-od", str(directory)]
    for key in keys:
        arguments += ["-k", key]
    run([*arguments, "127.0.0.1", str(archive.port)])
    return [dcmread(path) for path in sorted(directory.glob("rsp*.dcm"))]


def all_samples(samples: dict[str, list[Path]]) -> list[Path]:
    return [path for paths in samples.values() for path in paths]


def test_echo_from_a_known_peer(archive: Daemon) -> None:
    run(["echoscu", "-aec", "APPLIANCE", "127.0.0.1", str(archive.port)])


def test_unknown_calling_ae_is_rejected_with_the_reason_logged(archive: Daemon) -> None:
    result = run(["echoscu", "-aet", "INTRUDER", "-aec", "APPLIANCE", "127.0.0.1", str(archive.port)], check=False)
    assert result.returncode != 0
    assert "Rejected" in result.stdout + result.stderr
    # The daemon logs the reason after the A-ASSOCIATE-RJ has left: echoscu may return first.
    wait_for(lambda: "INTRUDER is not a configured peer" in archive.log(), "the rejection logged")


def test_peer_from_another_host_is_rejected(archive: Daemon) -> None:
    result = run(["echoscu", "-aet", "ELSEWHERE", "-aec", "APPLIANCE", "127.0.0.1", str(archive.port)], check=False)
    assert result.returncode != 0
    wait_for(lambda: "configured for 192.0.2.10, not 127.0.0.1" in archive.log(), "the rejection logged")


def test_every_modality_is_stored_and_indexed(archive: Daemon, samples: dict[str, list[Path]]) -> None:
    output = store(archive, all_samples(samples))
    assert output.count("Received Store Response (Success)") == 18
    statistics = cli(archive.config_path, "archive", "stats").stdout
    assert "instances           18" in statistics
    assert "patients            4" in statistics
    wait_for(lambda: "association from STORESCU (127.0.0.1): 18 object(s)" in archive.log(), "the summary line")
    (summary,) = [line for line in archive.log().splitlines() if "18 object(s)" in line]
    assert " bytes in " in summary and summary.endswith("(18 stored)")
    assert all(patient.name.split("^")[0] not in archive.log() for patient in PATIENTS)  # no patient data


def test_stored_file_keeps_the_received_dataset(
    archive: Daemon, samples: dict[str, list[Path]], tmp_path: Path
) -> None:
    original = dcmread(samples["US"][0])
    store(archive, samples["US"][:1])
    (received,) = get_study(
        archive.port,
        tmp_path / "get",
        "QueryRetrieveLevel=IMAGE",
        f"StudyInstanceUID={original.StudyInstanceUID}",
        f"SeriesInstanceUID={original.SeriesInstanceUID}",
        f"SOPInstanceUID={original.SOPInstanceUID}",
    )
    copy = dcmread(received)
    assert copy.PixelData == original.PixelData
    assert copy.NumberOfFrames == 4
    assert str(copy.PatientName) == str(original.PatientName)


def test_find_by_accented_name_in_utf8_keeps_the_oe_ligature(
    archive: Daemon, samples: dict[str, list[Path]], tmp_path: Path
) -> None:
    store(archive, samples["CT"])
    responses = find(
        archive,
        tmp_path / "find",
        "SpecificCharacterSet=ISO_IR 192",
        "QueryRetrieveLevel=STUDY",
        "PatientName=œuvrard*",
        "PatientID",
        "StudyInstanceUID",
        "ModalitiesInStudy",
        "NumberOfStudyRelatedInstances",
    )
    assert len(responses) == 1
    answer = responses[0]
    assert answer.SpecificCharacterSet == "ISO_IR 192"
    assert str(answer.PatientName) == "ŒUVRARD^Chloé"
    assert answer.ModalitiesInStudy == "CT"
    assert int(answer.NumberOfStudyRelatedInstances) == 3


@pytest.mark.parametrize(("pattern", "found"), [("B?UF*", 1), ("B??UF*", 0), ("BOEUF*", 1), ("bœuf^j?an", 1)])
def test_question_mark_is_one_character_of_the_stored_name(
    archive: Daemon, tmp_path: Path, pattern: str, found: int
) -> None:
    boeuf = Patient("IPP0005", "BŒUF^Jean", "19700101", "M", "ISO_IR 192")
    store(archive, write_series(tmp_path / "boeuf", 1, "CR", boeuf, accession_number="ACC0005"))
    keys = ("SpecificCharacterSet=ISO_IR 192", "QueryRetrieveLevel=STUDY", f"PatientName={pattern}", "PatientID")
    responses = find(archive, tmp_path / "find", *keys)
    assert [response.PatientID for response in responses] == ["IPP0005"] * found  # ? is Œ: PS3.4 C.2.2.2.4


def test_latin1_answer_when_latin1_is_enough(archive: Daemon, samples: dict[str, list[Path]], tmp_path: Path) -> None:
    store(archive, samples["CR"])  # LEFÈVRE^Hélène, sent in ISO_IR 100
    responses = find(archive, tmp_path / "find", "QueryRetrieveLevel=STUDY", "PatientName=LEFEVRE*", "PatientID")
    assert len(responses) == 1
    assert responses[0].SpecificCharacterSet == "ISO_IR 100"
    assert str(responses[0].PatientName) == "LEFÈVRE^Hélène"


def test_find_at_every_level_in_both_models(archive: Daemon, samples: dict[str, list[Path]], tmp_path: Path) -> None:
    store(archive, all_samples(samples))
    ct = dcmread(samples["CT"][0])
    patients = find(
        archive,
        tmp_path / "p",
        "QueryRetrieveLevel=PATIENT",
        "PatientID",
        "PatientName",
        "NumberOfPatientRelatedStudies",
        model="-P",
    )
    assert len(patients) == 4
    studies = find(
        archive,
        tmp_path / "s",
        "QueryRetrieveLevel=STUDY",
        "StudyDate=20261101-20261103",
        "StudyInstanceUID",
        "AccessionNumber",
    )
    assert sorted(study.AccessionNumber for study in studies) == ["ACC0001", "ACC0002", "ACC0003"]
    series = find(
        archive,
        tmp_path / "se",
        "QueryRetrieveLevel=SERIES",
        f"StudyInstanceUID={ct.StudyInstanceUID}",
        "SeriesInstanceUID",
        "Modality",
        "NumberOfSeriesRelatedInstances",
    )
    assert [(item.Modality, int(item.NumberOfSeriesRelatedInstances)) for item in series] == [("CT", 3)]
    images = find(
        archive,
        tmp_path / "i",
        "QueryRetrieveLevel=IMAGE",
        f"PatientID={ct.PatientID}",
        f"StudyInstanceUID={ct.StudyInstanceUID}",
        f"SeriesInstanceUID={ct.SeriesInstanceUID}",
        "SOPInstanceUID",
        "InstanceNumber",
        model="-P",
    )
    assert sorted(int(image.InstanceNumber) for image in images) == [1, 2, 3]
    modalities = find(
        archive, tmp_path / "m", "QueryRetrieveLevel=STUDY", "ModalitiesInStudy=MG\\US", "StudyInstanceUID"
    )
    assert len(modalities) == 2


def test_get_a_study_with_getscu(archive: Daemon, samples: dict[str, list[Path]], tmp_path: Path) -> None:
    store(archive, samples["CT"])
    study_uid = dcmread(samples["CT"][0]).StudyInstanceUID
    retrieved = get_study(archive.port, tmp_path / "get", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={study_uid}")
    originals = {dcmread(path).SOPInstanceUID: dcmread(path).PixelData for path in samples["CT"]}
    copies = {dcmread(path).SOPInstanceUID: dcmread(path).PixelData for path in retrieved}
    assert copies == originals


def test_move_a_study_to_storescp(
    archive: Daemon, samples: dict[str, list[Path]], tmp_path: Path, destination_port: int
) -> None:
    import subprocess

    store(archive, samples["DX"])
    study_uid = dcmread(samples["DX"][0]).StudyInstanceUID
    received = tmp_path / "moved"
    received.mkdir()
    destination = subprocess.Popen(["storescp", "-aet", "STORESCP", "-od", str(received), str(destination_port)])
    try:
        wait_for_port(destination_port, "storescp", destination)
        result = run(
            [
                "movescu",
                "-v",
                "-S",
                "-aec",
                "APPLIANCE",
                "-aem",
                "STORESCP",
                "-k",
                "QueryRetrieveLevel=STUDY",
                "-k",
                f"StudyInstanceUID={study_uid}",
                "127.0.0.1",
                str(archive.port),
            ]
        )
    finally:
        destination.terminate()
        destination.wait()
    assert len(list(received.iterdir())) == 3
    assert "Pending" in result.stdout + result.stderr


def test_move_to_a_destination_that_does_not_answer_says_so(
    archive: Daemon, samples: dict[str, list[Path]], tmp_path: Path, destination_port: int
) -> None:
    """Nothing listens at STORESCP's address: A702 (unable to perform sub-operations), not A801
    (destination unknown), and the log names the AE, host and port tried."""
    store(archive, samples["DX"])
    study_uid = dcmread(samples["DX"][0]).StudyInstanceUID
    assert not listening(destination_port)
    result = run(
        ["movescu", "-v", "-S", "-aec", "APPLIANCE", "-aem", "STORESCP", "-k", "QueryRetrieveLevel=STUDY",
         "-k", f"StudyInstanceUID={study_uid}", "127.0.0.1", str(archive.port)],
        check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    # DCMTK names A702 "OutOfResourcesSubOperations" and A801 "MoveDestinationUnknown" (PS3.4 C.4.2.1.5).
    assert "Final Move Response (Refused: OutOfResourcesSubOperations)" in output, output
    assert "MoveDestinationUnknown" not in output
    assert f"STORESCP at 127.0.0.1:{destination_port}" in archive.log()


def test_move_to_an_unknown_destination_fails_with_a801(archive: Daemon, samples: dict[str, list[Path]]) -> None:
    store(archive, samples["DX"][:1])
    study_uid = dcmread(samples["DX"][0]).StudyInstanceUID
    result = run(
        [
            "movescu",
            "-v",
            "-S",
            "-aec",
            "APPLIANCE",
            "-aem",
            "NOWHERE",
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"StudyInstanceUID={study_uid}",
            "127.0.0.1",
            str(archive.port),
        ],
        check=False,
    )
    assert "Refused: MoveDestinationUnknown" in result.stdout + result.stderr


def test_compressed_files_go_out_unchanged_or_decompressed(
    archive: Daemon, samples: dict[str, list[Path]], tmp_path: Path
) -> None:
    store(archive, samples["CT"])
    assert "compressed 3" in cli(archive.config_path, "archive", "compress", "--all").stdout
    study_uid = dcmread(samples["CT"][0]).StudyInstanceUID
    originals = {dcmread(path).SOPInstanceUID: dcmread(path).pixel_array for path in samples["CT"]}
    for option, syntax in (("+xt", "1.2.840.10008.1.2.4.80"), ("+x=", "1.2.840.10008.1.2.1")):
        received = get_study(
            archive.port, tmp_path / option.strip("+="), "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={study_uid}",
            options=(option,),
        )  # fmt: skip
        copies = [dcmread(path) for path in received]
        assert {copy.file_meta.TransferSyntaxUID for copy in copies} == {syntax}
        assert all((copy.pixel_array == originals[copy.SOPInstanceUID]).all() for copy in copies)


NAGLE_IMAGES = 30
DELAYED_ACK_SECONDS = 0.04  # Linux's shortest delayed-ACK timer


def test_peers_that_leave_nagle_on_are_not_held_by_delayed_acknowledgements(
    archive: Daemon, tmp_path: Path, destination_port: int
) -> None:
    """DCMTK leaves Nagle's algorithm on unless TCP_NODELAY is set: its short messages then wait for
    the archive's acknowledgement, which the kernel delays 40 ms unless the archive sends it at once
    (`quick_ack`). Before, every image of a retrieve waited that long: 30 images took over 1.2 s."""
    import os
    import subprocess
    import time

    paths = write_series(tmp_path / "series", NAGLE_IMAGES, "CT", PATIENTS[1])
    study_uid = dcmread(paths[0]).StudyInstanceUID
    store(archive, paths)
    nagle_on = {name: value for name, value in os.environ.items() if name != "TCP_NODELAY"}
    keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}", "127.0.0.1", str(archive.port)]
    moved, got = tmp_path / "moved", tmp_path / "got"
    moved.mkdir()
    got.mkdir()
    destination = subprocess.Popen(
        ["storescp", "-aet", "STORESCP", "-od", str(moved), str(destination_port)], env=nagle_on
    )
    try:
        wait_for_port(destination_port, "storescp", destination)
        seconds = {}
        for name, command in {
            "C-MOVE": ["movescu", "-S", "-aec", "APPLIANCE", "-aem", "STORESCP", *keys],
            "C-GET": ["getscu", "-S", "-aec", "APPLIANCE", "-od", str(got), *keys],
        }.items():
            start = time.perf_counter()
            subprocess.run(command, env=nagle_on, check=True, capture_output=True, timeout=60)
            seconds[name] = time.perf_counter() - start
    finally:
        destination.terminate()
        destination.wait()
    assert len(list(moved.iterdir())) == len(list(got.iterdir())) == NAGLE_IMAGES
    assert all(elapsed < NAGLE_IMAGES * DELAYED_ACK_SECONDS for elapsed in seconds.values()), seconds
