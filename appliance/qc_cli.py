"""`appliance qc ...`: the daily quality-control report (Q1), imported by `appliance/cli.py`.

run (make, keep and mail today's report; appliance-qc.timer runs it each morning), list (the
reports kept, newest first), show (one report as text, or written as HTML or PDF for an inspector).
The audit trail's chain, which the report checks, is the domain's: it is bound here
(`appliance.audit.trail.verify_file`) and handed to the platform's `appliance.qc`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import Engine

from appliance.audit.trail import verify_file
from appliance.config import Config
from appliance.daemons.runtime import add_location_options, loader, open_index
from appliance.practice_time import written
from appliance.qc import render, store
from appliance.qc.build import VerifyChain
from appliance.qc.daily import run_daily


def add_qc_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    qc = commands.add_parser("qc", help="the daily quality-control report: make it, list them, show one")
    actions = qc.add_subparsers(dest="action", required=True)
    run = actions.add_parser("run", help="make, keep and mail today's report (once a day)")
    run.add_argument("--force", action="store_true", help="make today's report again (while nobody signed it)")
    listing = actions.add_parser("list", help="the reports kept, newest first")
    listing.add_argument("--limit", type=int, default=30)
    show = actions.add_parser("show", help="one report: as text, or written as --html / --pdf")
    show.add_argument("day", help="the report's day (YYYY-MM-DD), or 'latest'")
    show.add_argument("--html", type=Path, help="write the report as a standalone HTML file")
    show.add_argument("--pdf", type=Path, help="write the report as an A4 PDF")
    for command in (run, listing, show):
        add_location_options(command)


def chain_verifier(config: Config) -> VerifyChain:
    """The audit trail's chain check the report runs (the domain's, bound here)."""
    return lambda: verify_file(config.audit.database)


def qc_command(arguments: argparse.Namespace) -> int:
    """Run one `appliance qc` command; 0 when done, 1 when the report asked for does not exist."""
    config = loader(arguments)()
    engine = open_index(config)
    try:
        if arguments.action == "run":
            return run(config, engine, arguments.force)
        if arguments.action == "list":
            for kept in store.recent(engine, limit=arguments.limit):
                signed = f"visé par {kept.signed_by} le {written(kept.signed_at)}" if kept.signed_at else "non visé"
                print(f"{kept.day}  {kept.status.word:<13} {signed}")
            return 0
        return show(engine, arguments)
    finally:
        engine.dispose()


def run(config: Config, engine: Engine, force: bool) -> int:
    try:
        outcome = run_daily(config, engine, datetime.now(UTC), chain_verifier(config), force)
    except store.AlreadySigned as error:
        print(f"{error}: it is kept as it is", file=sys.stderr)
        return 1
    kept = outcome.report
    print(f"quality-control report of {kept.day}: {kept.status.word}"
          f"{'' if outcome.made else ' (made earlier today; --force to make it again)'}")  # fmt: skip
    for section in kept.report.sections:
        print(f"  {section.status.word:<13} {section.title}: {section.summary}")
    print(f"facts SHA-256 {kept.facts_sha256}; mail: {outcome.mail or 'already sent'}")
    return 0


def show(engine: Engine, arguments: argparse.Namespace) -> int:
    kept = (
        store.latest(engine) if arguments.day == "latest" else store.on_day(engine, date.fromisoformat(arguments.day))
    )
    if kept is None:
        print(f"no quality-control report for {arguments.day}", file=sys.stderr)
        return 1
    if arguments.html:
        arguments.html.write_text(render.document(kept), encoding="utf-8")
        print(f"written {arguments.html} (style: {render.STYLESHEET})")
    if arguments.pdf:
        arguments.pdf.write_bytes(render.pdf(kept))
        print(f"written {arguments.pdf}")
    if not (arguments.html or arguments.pdf):
        print(render.mail_body(kept), end="")
    return 0
