"""`make bench`: HL7 messages applied per second by the real `appliance-hl7` daemon, on one MLLP
connection, each answered (AA) before the next is sent: new patients (ADT^A28) and new orders
(ORM^O01 with ZDS, patient upserted and a scheduled step created). Prints figures, asserts nothing.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from hl7_client import MllpClient, ack_code, golden
from servers import Daemon, archive_config, free_port, write_config

MESSAGES = 1000


def variants(template: bytes, count: int, keys: dict[str, str]) -> list[bytes]:
    """`count` copies of `template`, each with its own control ID, IPP and order numbers."""
    messages = []
    for number in range(count):
        message = template
        for old, prefix in keys.items():
            message = message.replace(old.encode(), f"{prefix}{number:06d}".encode())
        messages.append(message)
    return messages


def rate(client: MllpClient, messages: list[bytes]) -> float:
    started = time.perf_counter()
    for message in messages:
        answer = client.send(message)
        if ack_code(answer) != "AA":
            raise RuntimeError(f"unexpected answer {answer!r}")
    return len(messages) / (time.perf_counter() - started)


def bench_hl7(count: int = MESSAGES) -> dict[str, float]:
    """Messages applied per second, ADT^A28 then ORM^O01, on one connection of a fresh daemon."""
    work = Path(tempfile.mkdtemp(prefix="appliance-bench-hl7-"))
    config = archive_config(work / "data", free_port(), hl7={"bind_address": "127.0.0.1", "port": 0})
    daemon = Daemon("appliance.daemons.hl7", write_config(work / "appliance.yaml", config), work / "hl7.log").start()
    try:
        adt = variants(golden("a28_utf8.hl7"), count, {"A28-0001": "A", "IPP1001": "P"})
        orm = variants(
            golden("orm_zds_8859-15.hl7"),
            count,
            {"MSG0001": "M", "IPP123": "Q", "PLC0001": "L", "ACC0001": "C", "1.2.250.999.1.20250601.1": "1.2.9."},
        )
        with MllpClient(daemon.port) as client:
            figures = {"ADT^A28": rate(client, adt), "ORM^O01": rate(client, orm)}
    finally:
        daemon.stop()
        shutil.rmtree(work, ignore_errors=True)
    for name, value in figures.items():
        print(f"  HL7 {name}: {value:.0f} messages/s applied and acknowledged (one connection, {count} messages)")
    return figures


if __name__ == "__main__":
    bench_hl7()
