"""`make fuzz-hl7`: thousands of broken and hostile HL7 frames sent to the real `appliance-hl7` daemon
over real MLLP sockets, from a fixed seed (the same cases every run): truncated MLLP framing, bad
encoding characters, huge fields, invalid UTF-8 and Latin-1, random segments, valid messages with
one field mutated, bare MSH lines. Every case gets an answer or a clean close; a valid probe message
is sent every `PROBE_EVERY` cases and must be accepted.

Prints a tally: cases, answered (by MSA-1), clean closes, no answer, crashes (the daemon died or
stopped accepting a valid message), stored (rows of the index holding a value DICOM cannot carry:
checked with pydicom's own validators, must be 0), and the daemon's threads and memory before and
after. Exits 1 when there is a crash, a case without answer or close, or a bad value stored.

    PYTHONPATH=. python tests/fuzz/fuzz_hl7.py [--cases 3000] [--seed 15]
"""

from __future__ import annotations

import argparse
import random
import shutil
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

import psutil
from hl7_client import ack_code, golden
from pydicom import config as pydicom_config
from pydicom.valuerep import validate_value
from servers import Daemon, archive_config, free_port, write_config
from sqlalchemy import create_engine, select

from appliance.db.schema import patient, scheduled_step
from appliance.hl7.mllp import ConnectionClosed, frame, read_answer

SEED = 15
CASES = 3000
PROBE_EVERY = 100
ANSWER_SECONDS = 15.0
GOLDEN = [
    "a28_utf8.hl7", "a28_8859-1.hl7", "a31_nia_to_nir.hl7", "a01_admission_8859-15.hl7", "a40_merge.hl7",
    "a47_ins_deletion.hl7", "orm_zds_8859-15.hl7", "orm_no_zds_unlabelled.hl7", "omi_ipc_8859-1.hl7", "qbp_q22.hl7",
]  # fmt: skip
# Values a mutated field gets: separators, escapes, nulls, dates, UIDs, names, controls, sizes.
JUNK = [
    "", '""', "^", "^^^^^", "~~~", "&&", "\\", "\\E\\", "\\F\\\\S\\", "\\X00\\", "\\X0D0A\\", "\\Xzz\\", "\\.br\\",
    "notadate", "19800230", "1980", "2025-06-01", "99999999999999", "1.2.abc'x", "1.2..3", "1.02", "0" * 80,
    "mg", "ct scanner", "A" * 17, "A" * 65, "Z" * 300, "É" * 70, "Œ€", "\x00", "\x07", "\t", "\x1b", "\x0b", "\x1c",
    "ÿþ", "\ud800".encode("utf-8", "surrogatepass").decode("latin-1"), "DUPONT^" + "J" * 70, "=", "A=B^C",
]  # fmt: skip


class Tally:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()

    def add(self, kind: str, outcome: str) -> None:
        self.kinds[kind] += 1
        self.counts[outcome] += 1


def with_control_id(message: bytes, number: int, prefix: str = "FZ") -> bytes:
    """The message with MSH-10 replaced (so the fuzz cases are not answered as duplicates)."""
    lines = message.split(b"\r")
    fields = lines[0].split(b"|")
    if len(fields) > 9:
        fields[9] = f"{prefix}{number:06d}".encode()
    return b"\r".join([b"|".join(fields), *lines[1:]])


def mutated_field(rng: random.Random, number: int) -> bytes:
    """A golden message with one field (or component) replaced by junk, in the message's charset."""
    message = with_control_id(golden(rng.choice(GOLDEN)), number)
    lines = message.split(b"\r")
    position = rng.randrange(len(lines))
    fields = lines[position].split(b"|")
    if len(fields) < 2 or (position == 0 and len(fields) < 12):
        return message
    first = 9 if position == 0 and rng.random() < 0.7 else 1  # MSH-1/2 mostly left (other cases break them)
    index = rng.randrange(first, len(fields) + 2)
    junk = rng.choice(JUNK) if rng.random() < 0.8 else "".join(chr(rng.randrange(1, 0x2FF)) for _ in range(20))
    encoded = junk.encode(rng.choice(["utf-8", "latin-1"]), errors="replace")
    fields += [b""] * (index + 1 - len(fields))
    components = fields[index].split(b"^")
    components[rng.randrange(len(components))] = encoded
    fields[index] = b"^".join(components)
    lines[position] = b"|".join(fields)
    return b"\r".join(lines)


def bad_encoding_characters(rng: random.Random, number: int) -> bytes:
    message = with_control_id(golden(rng.choice(GOLDEN)), number)
    separators = "".join(rng.choice("|^~\\&#A1 \x00\r\n") for _ in range(rng.randrange(0, 7)))
    return b"MSH" + separators.encode("latin-1") + message[8:]


def huge_field(rng: random.Random, number: int) -> bytes:
    message = with_control_id(golden(rng.choice(GOLDEN)), number)
    size = rng.choice([70_000, 300_000, 1_100_000, 2_500_000])
    filler = bytes([rng.choice(b"AZ^~&\\|")]) * size if rng.random() < 0.5 else b"X" * size
    lines = message.split(b"\r")
    position = rng.randrange(1, len(lines)) if len(lines) > 1 else 0
    lines[position] += b"|" + filler
    return b"\r".join(lines)


def invalid_text(rng: random.Random, number: int) -> bytes:
    message = with_control_id(golden(rng.choice(GOLDEN)), number)
    label = rng.choice([b"UNICODE UTF-8", b"8859/1", b"8859/15", b"", b"ASCII", b"KLINGON"])
    header, _, rest = message.partition(b"\r")
    fields = header.split(b"|")
    fields += [b""] * (18 - len(fields))
    fields[17] = label
    garbage = bytes(rng.randrange(0x80, 0x100) for _ in range(rng.randrange(1, 40)))
    cut = rng.randrange(len(rest) + 1)
    return b"|".join(fields) + b"\r" + rest[:cut] + garbage + rest[cut:]


def random_segments(rng: random.Random, number: int) -> bytes:
    header = with_control_id(golden(rng.choice(GOLDEN)), number).split(b"\r")[0]
    segments = [header]
    for _ in range(rng.randrange(0, 12)):
        name = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(rng.choice([2, 3, 3, 3, 4])))
        if rng.random() < 0.3:
            name = rng.choice(["PID", "PV1", "ORC", "OBR", "ZDS", "IPC", "TQ1", "MRG", "QPD", "MSH"])
        fields = [
            "".join(rng.choice("AB1^~&\\ .-é") for _ in range(rng.randrange(0, 12)))
            for _ in range(rng.randrange(0, 40))
        ]
        segments.append("|".join([name, *fields]).encode("utf-8"))
    return b"\r".join(segments)


def bare_msh(rng: random.Random, number: int) -> bytes:
    return rng.choice([b"MSH", b"MSH\r", b"MSH\rPID|1", b"MSH|", b"MSH|^~\\&", b"MSH|^~\\&|" * 3, b"\x00MSH", b""])


def random_bytes(rng: random.Random, number: int) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 400))).replace(b"\x1c\x0d", b"")


BUILDERS: dict[str, Callable[[random.Random, int], bytes]] = {
    "mutated field": mutated_field,
    "bad encoding characters": bad_encoding_characters,
    "huge field": huge_field,
    "invalid UTF-8 / Latin-1": invalid_text,
    "random segments": random_segments,
    "bare MSH": bare_msh,
    "random bytes": random_bytes,
}
WEIGHTS = [50, 8, 3, 12, 12, 5, 5]  # mutated fields first; "truncated framing" is decided per case


def send_case(port: int, data: bytes, truncate: int | None) -> str:
    """Send one case on a new connection: its frame (or the first `truncate` bytes of it and a
    close); the outcome: MSA-1 of the answer, "clean close" or "no answer"."""
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_SECONDS) as connection:
        framed = frame(data)
        try:
            connection.sendall(framed if truncate is None else framed[:truncate])
            if truncate is not None:
                connection.shutdown(socket.SHUT_WR)
            answer = read_answer(connection, ANSWER_SECONDS)
        except ConnectionClosed as closed:
            return "no answer" if "idle timeout" in str(closed) else "clean close"
        except (ConnectionResetError, BrokenPipeError):
            return "clean close"  # closed by the listener while we were still sending (frame too large)
    return f"answered {ack_code(answer) or '(no MSA)'}"


def probe(port: int, number: int) -> bool:
    """A valid new patient is still accepted."""
    message = with_control_id(golden("a28_utf8.hl7"), number, "PROBE").replace(b"IPP1001^", f"PRB{number}^".encode())
    try:
        outcome = send_case(port, message, None)
    except OSError as error:
        outcome = str(error)
    if outcome != "answered AA":
        print(f"probe after case {number}: {outcome}", file=sys.stderr)
    return outcome == "answered AA"


def invalid(vr: str, value: str) -> bool:
    """Whether `value` cannot be a DICOM `vr` value (pydicom's validators, and a real calendar date)."""
    if not value:
        return False
    try:
        validate_value(vr, value, pydicom_config.RAISE)
    except ValueError:
        return True
    if vr == "DA":
        try:
            datetime.strptime(value, "%Y%m%d")
        except ValueError:
            return True
    return vr in ("LO", "SH", "PN", "AE") and any(character < " " or character == "\\" for character in value)


PATIENT_VRS = {"patient_id": "LO", "issuer_of_patient_id": "LO", "patient_name": "PN", "patient_birth_date": "DA",
               "patient_sex": "CS"}  # fmt: skip
STEP_VRS = {
    "placer_order_number": "LO", "filler_order_number": "LO", "accession_number": "SH", "requested_procedure_id": "SH",
    "study_instance_uid": "UI", "scheduled_procedure_step_id": "SH", "modality": "CS",
    "scheduled_station_ae_title": "AE",
    "scheduled_station_name": "SH", "scheduled_start_date": "DA", "scheduled_start_time": "TM",
    "referring_physician_name": "PN", "requesting_physician_name": "PN", "priority": "CS", "procedure_code_value": "SH",
    "procedure_code_scheme": "SH", "requested_procedure_description": "LO", "reason": "LO",
}  # fmt: skip


def stored_bad_values(index: Path) -> list[str]:
    """Index rows holding a value that cannot be its DICOM attribute (table, column)."""
    engine = create_engine(f"sqlite:///{index}")
    found = []
    with engine.connect() as connection:
        for table, vrs in ((patient, PATIENT_VRS), (scheduled_step, STEP_VRS)):
            for row in connection.execute(select(*(table.c[column] for column in vrs))):
                found += [
                    f"{table.name}.{column}" for column, vr in vrs.items() if invalid(vr, str(row._mapping[column]))
                ]
    engine.dispose()
    return found


def measures(daemon: Daemon) -> tuple[int, float]:
    assert daemon.process is not None
    process = psutil.Process(daemon.process.pid)
    return process.num_threads(), process.memory_info().rss / 1e6


def run(cases: int, seed: int) -> int:
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="appliance-fuzz-hl7-"))
    hl7 = {"bind_address": "127.0.0.1", "port": 0}
    config = archive_config(work / "data", free_port(), hl7=hl7, logging={"level": "WARNING"})
    daemon = Daemon("appliance.daemons.hl7", write_config(work / "appliance.yaml", config), work / "hl7.log").start()
    tally, crashes, started = Tally(), 0, time.monotonic()
    try:
        before = measures(daemon)
        for number in range(cases):
            kind = rng.choices(list(BUILDERS), WEIGHTS)[0]
            data = BUILDERS[kind](rng, number)
            truncate = rng.randrange(0, len(data) + 2) if rng.random() < 0.08 else None
            if truncate is not None:
                kind = "truncated MLLP framing"
            tally.add(kind, send_case(daemon.port, data, truncate))
            if (number + 1) % PROBE_EVERY == 0 and not probe(daemon.port, number):
                crashes += 1
                if daemon.process is not None and daemon.process.poll() is not None:
                    print(f"case {number}: the daemon died; restarted", file=sys.stderr)
                    daemon.start()
        crashes += 0 if probe(daemon.port, cases) else 1
        after = measures(daemon)
        stored = stored_bad_values(work / "data" / "index" / "appliance.sqlite")
        tracebacks = daemon.log().count("Traceback")
    finally:
        daemon.stop()
    report(tally, crashes, stored, tracebacks, before, after, time.monotonic() - started, seed)
    shutil.rmtree(work, ignore_errors=True)
    return 1 if crashes or stored or tally.counts["no answer"] else 0


def report(
    tally: Tally, crashes: int, stored: list[str], tracebacks: int, before: tuple[int, float], after: tuple[int, float],
    seconds: float, seed: int,
) -> None:  # fmt: skip
    answered = {key: value for key, value in sorted(tally.counts.items()) if key.startswith("answered")}
    print(f"HL7 fuzz (seed {seed}): {sum(tally.kinds.values())} cases in {seconds:.0f} s")
    print("  by kind: " + ", ".join(f"{kind} {count}" for kind, count in tally.kinds.most_common()))
    print(
        f"  answered: {sum(answered.values())} ("
        + ", ".join(f"{key[9:]} {value}" for key, value in answered.items())
        + ")"
    )
    print(f"  clean closes: {tally.counts['clean close']}")
    print(f"  no answer (timed out): {tally.counts['no answer']}")
    print(f"  crashes (daemon died or a valid message not accepted): {crashes}")
    print(f"  stored (bad values in the index): {len(stored)} {sorted(set(stored))[:10] if stored else ''}")
    print(f"  tracebacks in the daemon's log: {tracebacks}")
    print(f"  daemon threads {before[0]} -> {after[0]}, memory {before[1]:.1f} -> {after[1]:.1f} MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=CASES)
    parser.add_argument("--seed", type=int, default=SEED)
    arguments = parser.parse_args(argv)
    return run(arguments.cases, arguments.seed)


if __name__ == "__main__":
    raise SystemExit(main())
