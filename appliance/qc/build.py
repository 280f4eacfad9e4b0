"""A day's report put together: every section, in the order the report shows them.

The audit trail's chain belongs to the domain (`appliance.audit`), above this package: the caller
hands in `verify_chain` (`appliance.audit.trail.verify_file` bound to the trail's path), whose
result only needs the shape of `ChainOutcome`. Its last record's seq and hash go into the report
(and its mail): copied out of the box each day, they anchor the trail (a trail rewritten later
would show another hash for that record).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Engine

from appliance import practice_time
from appliance.config import Config
from appliance.qc import backups, compression, health
from appliance.qc.fixity import LISTED, check_sample
from appliance.qc.report import Report, Section, Status

LOG = logging.getLogger(__name__)
DEFAULT_PERIOD = timedelta(hours=24)
MEGABYTE = 1000**2


class ChainBreak(Protocol):
    @property
    def seq(self) -> int: ...
    @property
    def problem(self) -> str: ...


class ChainOutcome(Protocol):
    """What the report needs of an audit chain verification (`appliance.audit.trail.ChainReport`)."""

    @property
    def checked(self) -> int: ...
    @property
    def last_seq(self) -> int: ...
    @property
    def last_hash(self) -> str: ...
    @property
    def breaks(self) -> Sequence[ChainBreak]: ...


VerifyChain = Callable[[], ChainOutcome]


def build_report(
    config: Config, engine: Engine, now: datetime, verify_chain: VerifyChain, previous: Report | None
) -> Report:
    """Today's report; `previous` (the last report kept) gives the period's start and the fixity cursor."""
    period_start = previous.produced_at if previous is not None else now - DEFAULT_PERIOD
    after_id = int(previous.number("fixity", "last_id", 0) or 0) if previous is not None else 0
    sections = [
        fixity_section(config, engine, after_id),
        compression.section(engine, period_start),
        backups.backup_section(config, engine, now),
        backups.drill_section(config, now),
        *health.health_sections(config, engine, period_start, now),
        audit_section(verify_chain),
    ]
    return Report(practice_time.day_of(now), now, config.site_name, period_start, tuple(sections))


def fixity_section(config: Config, engine: Engine, after_id: int) -> Section:
    cycle = config.qc.fixity_cycle_days
    result = check_sample(engine, config.storage.archive_directory, after_id, cycle)
    numbers = {"total": result.total, "sample_size": result.sample_size, "checked": result.checked,
               "bytes_read": result.bytes_read, "seconds": result.seconds, "first_id": result.first_id,
               "last_id": result.last_id, "wrapped": result.wrapped, "cycle_days": cycle,
               "missing": len(result.missing), "altered": len(result.altered)}  # fmt: skip
    lines = [
        f"{result.checked} fichier(s) relu(s) sur {result.total} ({result.bytes_read / MEGABYTE:.1f} Mo en "
        f"{result.seconds:.1f} s), instances n° {result.first_id} à {result.last_id}"
        f"{' (reprise au début de l’archive)' if result.wrapped else ''}.",
        f"Toute l'archive est relue en {cycle} jours.",
        *(f"Manquant : {item['path']} (examen {item['study_instance_uid']} du {item['study_date']})"
          for item in result.missing[:LISTED]),
        *(f"Altéré : {item['path']} (examen {item['study_instance_uid']} du {item['study_date']})"
          for item in result.altered[:LISTED]),
    ]  # fmt: skip
    title = "Intégrité des images (échantillon tournant)"
    damaged = len(result.missing) + len(result.altered)
    if damaged:
        summary = (f"{damaged} fichier(s) endommagé(s) : les restaurer depuis la sauvegarde "
                   "(appliance backup restore studies --study …).")  # fmt: skip
        return Section("fixity", title, Status.FAILURE, summary, tuple(lines), numbers)
    summary = "Aucune image archivée." if not result.total else "Chaque fichier relu a l'empreinte SHA-256 de l'index."
    return Section("fixity", title, Status.OK, summary, tuple(lines), numbers)


def audit_section(verify_chain: VerifyChain) -> Section:
    """The chain recomputed; its head (last seq and hash) is the day's anchor."""
    title = "Journal d'audit (chaîne d'empreintes)"
    try:
        outcome = verify_chain()
    except Exception as error:  # the report must still be made, saying the check could not run
        LOG.exception("audit chain verification failed")
        return Section("audit", title, Status.WARNING, "La vérification du journal d'audit n'a pas pu être faite.",
                       (f"{type(error).__name__}: {error}",))  # fmt: skip
    numbers = {"checked": outcome.checked, "last_seq": outcome.last_seq, "last_hash": outcome.last_hash,
               "broken": len(outcome.breaks)}  # fmt: skip
    lines = [f"{outcome.checked} enregistrement(s) vérifié(s).",
             f"Tête de la chaîne : enregistrement n° {outcome.last_seq}, SHA-256 {outcome.last_hash}.",
             *(f"Rupture au n° {found.seq} : {found.problem}" for found in list(outcome.breaks)[:50])]  # fmt: skip
    if outcome.breaks:
        summary = f"La chaîne est rompue à {len(outcome.breaks)} endroit(s) : le journal a été modifié."
        return Section("audit", title, Status.FAILURE, summary, tuple(lines), numbers)
    return Section("audit", title, Status.OK, "Chaîne intacte : aucun enregistrement modifié, retiré ni inséré.",
                   tuple(lines), numbers)  # fmt: skip
