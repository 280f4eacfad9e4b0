"""Objects made ready for the wire (`dicom.retrieve.prepare`), here or a few ahead in worker
processes (`Lookahead`): the same bytes either way, the pixels of a decoded object equal to the
original's, and the decoder chosen for JPEG-LS (CharLS) giving the pixels the other one gives."""

from __future__ import annotations

import io
import threading
from concurrent.futures import wait
from pathlib import Path

import numpy as np
import pytest
from datagen import PATIENTS, make_instance
from pydicom import dcmread
from pydicom.dataset import FileMetaDataset
from pydicom.filereader import read_dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLSLossless

from appliance.archive.retrieve import Coercion, Delivery, RetrieveItem, RetrievePlan
from appliance.dicom import retrieve


def stored(directory: Path, number: int, syntax: str = JPEGLSLossless) -> tuple[RetrieveItem, np.ndarray]:
    dataset = make_instance("CT", PATIENTS[0], instance_number=number)
    pixels = dataset.pixel_array.copy()
    if syntax == JPEGLSLossless:
        dataset.compress(JPEGLSLossless, encoding_plugin="pyjpegls", generate_instance_uid=False)
    path = directory / f"{number}.dcm"
    dataset.save_as(path, enforce_file_format=True)
    item = RetrieveItem(str(path), str(dataset.SOPClassUID), str(dataset.SOPInstanceUID), syntax,
                        str(dataset.StudyInstanceUID))  # fmt: skip
    return item, pixels


def pixels_of(data: bytes, syntax: str) -> np.ndarray:
    syntax_uid = retrieve.UID(syntax)
    dataset = read_dataset(io.BytesIO(data), is_implicit_VR=syntax_uid.is_implicit_VR, is_little_endian=True)
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = syntax_uid
    return dataset.pixel_array


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_a_jpeg_ls_object_is_decoded_into_the_accepted_syntax(tmp_path: Path, syntax: str) -> None:
    item, pixels = stored(tmp_path, 1)
    ready = retrieve.prepare(Path(item.path), item, None, [syntax])
    assert (ready.transfer_syntax_uid, ready.delivery, ready.path) == (syntax, Delivery.DECODED, None)
    assert ready.data is not None
    assert np.array_equal(pixels_of(ready.data, syntax), pixels)


def test_an_accepted_stored_syntax_goes_as_the_file_is(tmp_path: Path) -> None:
    item, _ = stored(tmp_path, 1)
    ready = retrieve.prepare(Path(item.path), item, None, [ExplicitVRLittleEndian, JPEGLSLossless])
    assert (ready.transfer_syntax_uid, ready.delivery, ready.path) == (
        JPEGLSLossless,
        Delivery.AS_STORED,
        Path(item.path),
    )
    whole = Path(item.path).read_bytes()
    assert dcmread(io.BytesIO(whole)).file_meta  # the offset is where the file meta group ends
    assert whole[retrieve.data_set_offset(Path(item.path)) :][:4] == b"\x08\x00\x05\x00"  # (0008,0005) first


def test_charls_decodes_what_the_other_decoder_decodes(tmp_path: Path) -> None:
    pytest.importorskip("libjpeg")
    item, pixels = stored(tmp_path, 1)
    by_charls = dcmread(item.path).pixel_array
    dataset = dcmread(item.path)
    dataset.decompress(generate_instance_uid=False, decoding_plugin="pylibjpeg")
    assert np.array_equal(by_charls, dataset.pixel_array)
    assert np.array_equal(by_charls, pixels)


def test_objects_prepared_ahead_in_worker_processes_are_the_ones_prepared_here(tmp_path: Path) -> None:
    items, originals = zip(*(stored(tmp_path, number) for number in range(1, 7)), strict=True)
    lookahead = retrieve.Lookahead(RetrievePlan(tuple(items)), lambda item: Path(item.path))
    retrieve.start_workers()  # as the first retrieve that needs them has them started
    try:
        lookahead.prepare_ahead(0, [ExplicitVRLittleEndian])
        ahead = dict(lookahead.futures)
        assert sorted(ahead) == list(range(1 + retrieve.LOOKAHEAD))  # this one and LOOKAHEAD after it
        wait(ahead.values(), timeout=120)
        sent = [lookahead.prepared(position, Path(item.path), [ExplicitVRLittleEndian])
                for position, item in enumerate(items)]  # fmt: skip
    finally:
        lookahead.close()
    assert all(future.done() and not future.cancelled() for future in ahead.values())
    assert retrieve.workers() is not None
    for ready, item, pixels in zip(sent, items, originals, strict=True):
        here = retrieve.prepare(Path(item.path), item, None, [ExplicitVRLittleEndian])
        assert ready == here
        assert ready.data is not None and np.array_equal(pixels_of(ready.data, ExplicitVRLittleEndian), pixels)


def test_the_first_retrieve_needing_workers_does_not_wait_for_them_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in [("_WORKERS", []), ("_WORKERS_FAILED", []), ("_WORKERS_STARTING", []),
                        ("_WORKERS_READY", threading.Event())]:  # fmt: skip
        monkeypatch.setattr(retrieve, name, value)
    started = threading.Event()
    monkeypatch.setattr(retrieve, "start_workers", started.set)
    items, _ = zip(*(stored(tmp_path, number) for number in range(1, 4)), strict=True)
    lookahead = retrieve.Lookahead(RetrievePlan(tuple(items)), lambda item: Path(item.path))
    first = lookahead.prepared(0, Path(items[0].path), [ExplicitVRLittleEndian])
    assert first.data is not None  # prepared here, at once
    lookahead.sent(0)
    assert not lookahead.futures  # nothing waits for workers that are not up yet
    assert started.wait(10)  # their start begun in the background, once
    assert retrieve.ready_workers() is None and retrieve._WORKERS_STARTING == [True]


def test_the_workers_get_the_objects_ahead_once_the_first_is_sent(tmp_path: Path) -> None:
    """Decoding beside the first image slowed its writing to the socket down: 7 ms instead of 1.5."""
    items, originals = zip(*(stored(tmp_path, number) for number in range(1, 7)), strict=True)
    lookahead = retrieve.Lookahead(RetrievePlan(tuple(items)), lambda item: Path(item.path))
    retrieve.start_workers()
    try:
        first = lookahead.prepared(0, Path(items[0].path), [ExplicitVRLittleEndian])
        assert first.data is not None and not lookahead.futures
        lookahead.sent(0)
        assert sorted(lookahead.futures) == list(range(1, 1 + retrieve.LOOKAHEAD))
        lookahead.sent(0)  # once only
        second = lookahead.prepared(1, Path(items[1].path), [ExplicitVRLittleEndian])
        assert sorted(lookahead.futures) == list(range(2, 2 + retrieve.LOOKAHEAD))
    finally:
        lookahead.close()
    assert second.data is not None
    assert np.array_equal(pixels_of(second.data, ExplicitVRLittleEndian), originals[1])


def test_the_next_object_sent_as_stored_is_read_while_the_peer_takes_this_one(tmp_path: Path) -> None:
    """Read once the response came, it kept the peer waiting (0.1 ms per CT image); its reference
    is made then too."""
    items, _ = zip(*(stored(tmp_path, number, ExplicitVRLittleEndian) for number in range(1, 4)), strict=True)
    lookahead = retrieve.Lookahead(RetrievePlan(tuple(items)), lambda item: Path(item.path))
    accepted = {items[0].sop_class_uid: [ExplicitVRLittleEndian]}.__getitem__
    first = lookahead.prepared(0, Path(items[0].path), [ExplicitVRLittleEndian])
    assert first.path == Path(items[0].path) and first.data is None  # nothing read ahead: streamed from its file
    lookahead.read_next(0, accepted)
    data_set = Path(items[1].path).read_bytes()[retrieve.data_set_offset(Path(items[1].path)) :]
    assert lookahead.read == {1: data_set}
    made = lookahead.made[1]
    assert (made.SOPInstanceUID, made.item, made.position) == (items[1].sop_instance_uid, items[1], 1)
    assert lookahead.reference(1) is made and not lookahead.made  # handed out once
    Path(items[1].path).unlink()  # what was read is what is sent
    second = lookahead.prepared(1, Path(items[1].path), [ExplicitVRLittleEndian])
    assert second == retrieve.Prepared(ExplicitVRLittleEndian, Delivery.AS_STORED, data=data_set)
    assert not lookahead.read
    lookahead.read_next(2, accepted)  # the last one: nothing after it
    assert not lookahead.read


@pytest.mark.parametrize("why", ["decoded", "coerced", "other tier", "too long", "missing"])
def test_an_object_not_sent_as_stored_from_a_readable_file_is_not_read_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, why: str
) -> None:
    syntax = JPEGLSLossless if why == "decoded" else ExplicitVRLittleEndian
    items = [stored(tmp_path, 1, ExplicitVRLittleEndian)[0], stored(tmp_path, 2, syntax)[0]]
    coercions: dict[str, Coercion] = {}
    if why == "coerced":
        coercions = {items[1].study_instance_uid: Coercion({"PatientID": "NEW"})}
    if why == "other tier":
        items[1] = items[1]._replace(tier="nas")  # a deferred tier: read from there when sent
    if why == "too long":
        monkeypatch.setattr(retrieve, "READ_AHEAD_BYTES", Path(items[1].path).stat().st_size - 1)
    if why == "missing":
        Path(items[1].path).unlink()
    lookahead = retrieve.Lookahead(RetrievePlan(tuple(items), coercions), lambda item: Path(item.path))
    lookahead.read_next(0, lambda _sop_class: [ExplicitVRLittleEndian])
    assert not lookahead.read
    assert (1 in lookahead.made) is (why != "other tier")  # a deferred tier's file is located in its turn
    if why in ("too long", "missing"):
        later = lookahead.prepared(1, Path(items[1].path), [ExplicitVRLittleEndian])
        assert later.path == Path(items[1].path)  # streamed when sent: a missing file fails then, as before
