"""The lossless compression as the index records it: every compressed file was decoded again and
compared pixel for pixel with the original before it replaced it (`appliance.archive.lossless`),
so a compressed instance is a verified one. Counted here: verified in all and during the period;
stored uncompressed (waiting, or objects without pixels the codec takes: said, not judged);
received lossy from a modality (allowed, said); made lossy in the deferred tier where the
configuration allows it (`tiers.lossy`, said); compressed by the box into a lossy syntax otherwise
(never allowed: a failure)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, func, select

from appliance.db.schema import instance
from appliance.qc.report import Section, Status

KEY = "lossless"
TITLE = "Compression sans perte vérifiée"
# Explicit and Implicit VR Little Endian, Explicit VR Big Endian, Deflated (PS3.5 A.2 to A.5).
UNCOMPRESSED = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99")


def count(engine: Engine, condition: object) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(instance).where(condition)) or 0)  # type: ignore[arg-type]


def section(engine: Engine, period_start: datetime) -> Section:
    compressed = instance.c.compressed_at.is_not(None)
    numbers = {
        "verified_total": count(engine, compressed),
        "verified_in_period": count(engine, compressed & (instance.c.compressed_at >= period_start)),
        "uncompressed": count(engine, instance.c.transfer_syntax_uid.in_(UNCOMPRESSED)),
        "received_lossy": count(
            engine, instance.c.lossy & instance.c.compressed_at.is_(None) & instance.c.lossy_source_uid.is_(None)
        ),
        "made_lossy": count(engine, instance.c.lossy & compressed & instance.c.lossy_source_uid.is_(None)),
        "deferred_lossy": count(engine, instance.c.lossy_source_uid.is_not(None)),
    }
    lines = [
        f"{numbers['verified_in_period']} image(s) compressée(s) et vérifiée(s) sur la période, "
        f"{numbers['verified_total']} au total.",
        f"{numbers['uncompressed']} objet(s) stocké(s) sans compression (en attente, ou sans image compressible).",
    ]
    if numbers["received_lossy"]:
        lines.append(f"{numbers['received_lossy']} image(s) reçue(s) déjà compressée(s) avec perte de la modalité.")
    if numbers["deferred_lossy"]:
        lines.append(f"{numbers['deferred_lossy']} image(s) compressée(s) avec perte en archivage différé, "
                     "comme la configuration l'autorise (tiers.lossy).")  # fmt: skip
    if numbers["made_lossy"]:
        return Section(KEY, TITLE, Status.FAILURE,
                       f"{numbers['made_lossy']} image(s) compressée(s) par le boîtier avec perte : interdit.",
                       tuple(lines), numbers)  # fmt: skip
    summary = "Chaque image compressée a été décodée et comparée à l'original avant de le remplacer."
    return Section(KEY, TITLE, Status.OK, summary, tuple(lines), numbers)
