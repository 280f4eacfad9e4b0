"""Fuzz the archive daemon's DICOM port with malformed PDUs and datasets (issue 15), then print a tally.

Each case is one connection: a PDU of every type built wrong (truncated, oversized, bad item
lengths, bad AE titles, even context IDs, unknown types, random bytes), or a well-formed
association by a configured peer followed by a damaged P-DATA (C-STORE of a damaged object, a bad
command set, fragments of wrong sizes, C-FIND with a damaged identifier). After every
`CHECK_EVERY` cases a valid C-ECHO must be answered, and at the end every object the archive
acknowledged must be in its index and files.

Tally: cases; answered (the daemon sent A-ASSOCIATE-RJ/AC, A-ABORT, a DIMSE status, or closed at
once); crashes (the daemon died or stopped answering a valid C-ECHO); lost (acknowledged objects
missing from the index or files). Also the daemon's memory and thread counts before and after.

    python tests/fuzz/fuzz_dicom.py [--cases N] [--seed S]
"""

from __future__ import annotations

import argparse
import random
import socket
import struct
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))

import psutil  # noqa: E402
from datagen import PATIENTS, encoded, make_instance  # noqa: E402
from dicom_wire import associate_request, connect, p_data, read_pdu, with_calling, with_context_id  # noqa: E402
from pydicom.dataset import Dataset  # noqa: E402
from pynetdicom import AE  # noqa: E402
from pynetdicom.dsutils import encode  # noqa: E402
from servers import Daemon, archive_config, cli, write_config  # noqa: E402

CHECK_EVERY = 100
ANSWER_SECONDS = 1.0
CT = "1.2.840.10008.5.1.4.1.1.2"
FIND = "1.2.840.10008.5.1.4.1.2.2.1"
VERIFICATION = "1.2.840.10008.1.1"
EXPLICIT, IMPLICIT = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2"
CONTEXTS = ((VERIFICATION, (IMPLICIT,)), (CT, (EXPLICIT, IMPLICIT)), (FIND, (IMPLICIT,)))


@dataclass
class Tally:
    cases: int = 0
    answered: int = 0
    silent: int = 0  # the daemon neither answered nor closed within the timeout
    crashes: int = 0
    acknowledged: list[str] = field(default_factory=list)


def command_set(fields: dict[str, object]) -> bytes:
    """A DIMSE command set, implicit VR little endian (PS3.7 E.1), with its group length."""
    dataset = Dataset()
    for keyword, value in fields.items():
        setattr(dataset, keyword, value)
    body = encode(dataset, True, True)
    assert body is not None
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body


def store_command(sop_instance_uid: str, message_id: int) -> bytes:
    fields = {"AffectedSOPClassUID": CT, "CommandField": 0x0001, "MessageID": message_id, "Priority": 0}
    return command_set({**fields, "CommandDataSetType": 0x0000, "AffectedSOPInstanceUID": sop_instance_uid})


def find_command(message_id: int) -> bytes:
    return command_set({"AffectedSOPClassUID": FIND, "CommandField": 0x0020, "MessageID": message_id,
                        "Priority": 0, "CommandDataSetType": 0x0000})  # fmt: skip


def dataset_bytes(dataset: Dataset) -> bytes:
    """The dataset as it goes in P-DATA (explicit VR little endian, no file meta)."""
    data = encoded(dataset)
    return data[144 + int.from_bytes(data[140:144], "little") :]


def mutate(data: bytes, generator: random.Random) -> bytes:
    """One random damage: flip bytes, cut, lengthen a length, insert or repeat a slice."""
    damage = generator.randrange(6)
    buffer = bytearray(data)
    if damage == 0 and buffer:
        for _ in range(generator.randint(1, 8)):
            buffer[generator.randrange(len(buffer))] = generator.randrange(256)
    elif damage == 1:
        buffer = buffer[: generator.randrange(len(buffer) + 1)]
    elif damage == 2 and len(buffer) > 12:
        position = generator.randrange(len(buffer) - 4)
        buffer[position : position + 4] = struct.pack("<I", generator.choice([0xFFFFFFFF, 0x7FFFFFFF, 1 << 20, 3]))
    elif damage == 3:
        position = generator.randrange(len(buffer) + 1)
        buffer[position:position] = generator.randbytes(generator.randint(1, 64))
    elif damage == 4 and len(buffer) > 16:
        start = generator.randrange(len(buffer) - 8)
        buffer[start:start] = buffer[start : start + generator.randint(1, 64)] * generator.randint(1, 4)
    else:
        buffer[16:24] = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"  # an item where an element should be
    return bytes(buffer)


def associate_cases(generator: random.Random) -> bytes:
    """A damaged association request (before any association)."""
    request = associate_request("STORESCU", contexts=CONTEXTS)
    choice = generator.randrange(9)
    if choice == 0:
        return with_context_id(request, generator.choice([0, 2, 4, 254, 256 % 256]))
    if choice == 1:
        return with_calling(
            request, generator.choice([b"", b" " * 16, b"\\\\", b"\x00" * 16, b"STRANGER", b"\xff" * 16])
        )
    if choice == 2:  # cut short (the peer then closes)
        return request[: generator.randrange(1, len(request))]
    if choice == 3:
        return request[:2] + struct.pack(">I", generator.choice([0, 10, 67, 1 << 28, 0xFFFFFFFF])) + request[6:]
    if choice == 4:
        return bytes([generator.choice([0x00, 0x08, 0x47, 0xFF, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07])]) + request[1:]
    if choice == 5:
        return generator.randbytes(generator.randint(1, 2048))
    return request[:74] + mutate(request[74:], generator)  # items: bad lengths and types


@dataclass
class Peer:
    """A configured peer on a raw socket, after a good association."""

    port: int

    def open(self) -> tuple[socket.socket, int] | None:
        connection = connect(self.port)
        connection.sendall(associate_request("STORESCU", contexts=CONTEXTS))
        answer = read_pdu(connection)
        if answer[:1] != b"\x02":
            connection.close()
            return None
        return connection, len(answer)


def after_association_case(generator: random.Random, message_id: int) -> tuple[list[bytes], str | None]:
    """P-DATA PDUs after a good association, and the SOP Instance UID of a C-STORE whose object
    was left intact (so that a success must mean it is archived), else None."""
    choice = generator.randrange(8)
    dataset = make_instance("CT", PATIENTS[message_id % len(PATIENTS)])
    dataset.Rows = dataset.Columns = 16
    dataset.PixelData = bytes(16 * 16 * 2)
    uid = str(dataset.SOPInstanceUID)
    good = dataset_bytes(dataset)
    command = store_command(uid, message_id)
    if choice == 0:  # damaged object, good command
        return [p_data(3, [(0x03, command)]), p_data(3, [(0x02, mutate(good, generator))])], None
    if choice == 1:  # damaged command set
        return [p_data(3, [(0x03, mutate(command, generator))]), p_data(3, [(0x02, good)])], None
    if choice == 2:  # an intact C-STORE, fragmented at random
        cut = generator.randrange(1, len(good))
        return [p_data(3, [(0x03, command)]), p_data(3, [(0x00, good[:cut])]), p_data(3, [(0x02, good[cut:])])], uid
    if choice == 3:  # wrong context IDs, control headers, PDV lengths
        pdu = bytearray(p_data(generator.choice([0, 2, 5, 255]), [(generator.randrange(256), command)]))
        return [bytes(pdu)], None
    if choice == 4:
        pdu = bytearray(p_data(3, [(0x03, command)]))
        pdu[6:10] = struct.pack(">I", generator.choice([0, 1, 2, len(pdu), 0xFFFFFFFF]))
        return [bytes(pdu)], None
    if choice == 5:  # C-FIND with a damaged identifier
        query = Dataset()
        query.QueryRetrieveLevel = generator.choice(["STUDY", "SERIES", "IMAGE", "", "PATIENT"])
        query.PatientName = generator.choice(["*", "DUP*", "?" * 70, "\\".join(["A"] * 50)])
        identifier = encode(query, True, True) or b""
        return [p_data(5, [(0x03, find_command(message_id))]), p_data(5, [(0x02, mutate(identifier, generator))])], None
    if choice == 6:  # other PDU types after the association
        return [bytes([generator.randrange(1, 8), 0]) + struct.pack(">I", 4) + generator.randbytes(4)], None
    return [mutate(p_data(3, [(0x03, command)]), generator)], None


def run_case(port: int, generator: random.Random, number: int, tally: Tally) -> None:
    before_association = generator.random() < 0.45
    try:
        if before_association:
            with connect(port) as connection:
                connection.sendall(associate_cases(generator))
                got = answered(connection)
                tally.answered += got
                tally.silent += 1 - got
            return
        opened = Peer(port).open()
        if opened is None:
            tally.silent += 1
            return
        connection = opened[0]
        pdus, uid = after_association_case(generator, number)
        with connection:
            for pdu in pdus:
                connection.sendall(pdu)
            started = time.monotonic()
            reply = read_pdu(connection, timeout=ANSWER_SECONDS)
            if reply or time.monotonic() - started < ANSWER_SECONDS - 0.5:
                tally.answered += 1
                if uid and reply[:1] == b"\x04" and status_of(reply) == 0:
                    tally.acknowledged.append(uid)
            else:
                tally.silent += 1
    except OSError:
        tally.answered += 1  # the daemon reset the connection at once: a clean close


def answered(connection: socket.socket) -> int:
    """1 when the daemon answered with a PDU or closed within the timeout, else 0."""
    started = time.monotonic()
    try:
        reply = read_pdu(connection, timeout=ANSWER_SECONDS)
    except OSError:
        return 1
    return 1 if reply or time.monotonic() - started < ANSWER_SECONDS - 0.5 else 0


def status_of(reply: bytes) -> int | None:
    """The Status (0000,0900) of a C-STORE-RSP command in a P-DATA PDU, if there."""
    position = reply.find(b"\x00\x00\x00\x09\x02\x00\x00\x00")
    return struct.unpack_from("<H", reply, position + 8)[0] if position >= 0 else None


def echo_answers(port: int) -> bool:
    ae = AE(ae_title="ECHOSCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate("127.0.0.1", port, ae_title="APPLIANCE")
    if not assoc.is_established:
        return False
    status = assoc.send_c_echo()
    assoc.release()
    return bool(status) and status.Status == 0


def measure(daemon: Daemon) -> tuple[float, int]:
    assert daemon.process is not None
    process = psutil.Process(daemon.process.pid)
    tree = [process, *process.children()]  # the acceptor and its serving processes
    return sum(each.memory_info().rss for each in tree) / 1024 / 1024, sum(each.num_threads() for each in tree)


def lost(config_path: Path, acknowledged: list[str]) -> int:
    """Acknowledged instances the archive's verify does not find (index or files)."""
    report = cli(config_path, "archive", "verify", check=False).stdout
    if "0 missing, 0 altered" not in report:
        print(report)
        return -1
    stats = cli(config_path, "archive", "stats").stdout
    count = next(int(line.split()[1]) for line in stats.splitlines() if "instances" in line)
    return max(0, len(set(acknowledged)) - count)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--keep-log", action="store_true", help="print the daemon's log at the end")
    arguments = parser.parse_args(argv)
    generator = random.Random(arguments.seed)
    warnings.simplefilter("ignore")  # pydicom warns about the values made bad on purpose
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        config_path = write_config(root / "fuzz.yaml", archive_config(root / "data", 1))
        daemon = Daemon("appliance.daemons.archive", config_path, root / "dicom.log").start()
        tally = Tally()
        started = time.monotonic()
        echo_answers(daemon.port)
        memory_before, threads_before = measure(daemon)
        try:
            for number in range(1, arguments.cases + 1):
                run_case(daemon.port, generator, number, tally)
                tally.cases += 1
                if number % CHECK_EVERY == 0 and not alive(daemon):
                    tally.crashes += 1
                    print(f"case {number}: the archive stopped answering; restarting it", flush=True)
                    daemon.stop()
                    daemon = Daemon("appliance.daemons.archive", config_path, root / "dicom.log").start()
            alive_at_end = alive(daemon)
            tally.crashes += 0 if alive_at_end else 1
            memory_after, threads_after = measure(daemon)
        finally:
            daemon.stop()
        missing = lost(config_path, tally.acknowledged)
        log = (root / "dicom.log").read_text()
        print(f"DICOM fuzz (seed {arguments.seed}): {tally.cases} cases in {time.monotonic() - started:.0f} s")
        print(f"  answered {tally.answered}, waiting for the rest of a message {tally.silent}, "
              f"crashes {tally.crashes}, lost {missing} of {len(tally.acknowledged)} acknowledged")  # fmt: skip
        print(f"  archive memory {memory_before:.1f} MB -> {memory_after:.1f} MB, threads {threads_before} -> "
              f"{threads_after}; log: {log.count(chr(10))} lines, {log.count('Traceback')} tracebacks")  # fmt: skip
        if "--keep-log" in (argv or sys.argv):
            print(log)
        return 0 if tally.crashes == 0 and missing == 0 else 1


def alive(daemon: Daemon) -> bool:
    return daemon.process is not None and daemon.process.poll() is None and echo_answers(daemon.port)


if __name__ == "__main__":
    raise SystemExit(main())
