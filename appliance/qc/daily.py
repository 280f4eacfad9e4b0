"""The run of each day (`appliance qc run`, appliance-qc.timer; the background worker under `make
run`): the day's report made once, kept, and mailed with its fingerprints."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from appliance.config import Config
from appliance.monitor.mail import MailError, send
from appliance.practice_time import day_of, local
from appliance.qc import render, store
from appliance.qc.build import VerifyChain, build_report

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class DailyOutcome:
    """The day's report, whether this run made it (False: it existed already), and what became of
    its mail ("sent", "not configured", or the relay's refusal)."""

    report: store.StoredReport
    made: bool
    mail: str


def due(config: Config, engine: Engine, now: datetime) -> bool:
    """Whether today's report is still to be made: past `qc.time` (the practice's time) and none kept for today."""
    hour, minute = (int(part) for part in config.qc.time.split(":"))
    clock = local(now)
    if (clock.hour, clock.minute) < (hour, minute):
        return False
    return store.on_day(engine, day_of(now)) is None


def run_daily(
    config: Config, engine: Engine, now: datetime, verify_chain: VerifyChain, force: bool = False
) -> DailyOutcome:
    """Make, keep and mail today's report; only return today's when it exists and `force` is not
    set (AlreadySigned when forced over a signed one)."""
    existing = store.on_day(engine, day_of(now))
    if existing is not None and not force:
        return DailyOutcome(existing, False, "")
    if existing is not None and existing.signed:
        raise store.AlreadySigned(f"the report of {existing.day} is signed off")
    previous = next((kept for kept in store.recent(engine, limit=2) if kept.day != day_of(now)), None)
    report = build_report(config, engine, now, verify_chain, previous.report if previous is not None else None)
    kept = store.save(engine, report)
    LOG.info("quality-control report of %s: %s (%s)", kept.day, kept.status.value, kept.facts_sha256)
    return DailyOutcome(kept, True, mail(config, kept, now))


def mail(config: Config, kept: store.StoredReport, now: datetime) -> str:
    if not config.mail.enabled:
        return "not configured"
    try:
        send(config, render.mail_subject(kept), render.mail_body(kept), now)
    except MailError as error:
        LOG.warning("quality-control report of %s not mailed: %s", kept.day, error)
        return str(error)
    return "sent"
