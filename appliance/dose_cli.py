"""`appliance dose export` (the NRD survey, K2) and `appliance billing report` (the archiving
supplements, Q2), imported by `appliance/cli.py`. Each file written is recorded in the audit trail
(110106 Export, the report and its period as the object, the local user as requestor).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from appliance.audit.activity import local_user, this_application
from appliance.audit.events import Action, AuditEvent, EventId, Outcome, exported_report
from appliance.audit.trail import AuditTrail
from appliance.billing.report import FRENCH, BadPeriod, billing_report, period_of, report_csv
from appliance.config import Config
from appliance.daemons.runtime import add_location_options, loader, open_index
from appliance.dose.survey import median_lines, survey, survey_csv


def add_dose_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dose = commands.add_parser("dose", help="the dose register and the NRD survey").add_subparsers(
        dest="action", required=True
    )
    export = dose.add_parser("export", help="write the NRD survey CSV of one exam type and print its medians")
    add_location_options(export)
    export.add_argument("--exam-type", required=True, help="code of a dose.exam_types entry (e.g. ct-head)")
    export.add_argument("--from", dest="first", type=date.fromisoformat, required=True, help="first exam day")
    export.add_argument("--to", dest="last", type=date.fromisoformat, required=True, help="last exam day")
    export.add_argument("--output", type=Path, required=True, help="CSV file to write")


def add_billing_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    billing = commands.add_parser("billing", help="the archiving supplements").add_subparsers(
        dest="action", required=True
    )
    report = billing.add_parser("report", help="write the supplements of a month or a quarter as CSV")
    add_location_options(report)
    report.add_argument("--period", required=True, help="a month (2008-01) or a quarter (2008-Q1)")
    report.add_argument("--output", type=Path, required=True, help="CSV file to write")


def dose_command(arguments: argparse.Namespace) -> int:
    """`dose export`: 0 when written, 2 for an unknown exam type."""
    config = loader(arguments)()
    exam_type = config.dose.exam_type(arguments.exam_type)
    if exam_type is None:
        known = ", ".join(found.code for found in config.dose.exam_types)
        print(f"unknown exam type {arguments.exam_type!r} (known: {known})", file=sys.stderr)
        return 2
    engine = open_index(config)
    try:
        found = survey(engine, exam_type, arguments.first, arguments.last)
    finally:
        engine.dispose()
    arguments.output.write_text(survey_csv(found), encoding="utf-8")
    period = f"{arguments.first.isoformat()}/{arguments.last.isoformat()}"
    record_export(
        config, "dose-survey", period, (("exam-type", exam_type.code), ("rows", str(len(found.measurements))))
    )
    print(f"{exam_type.label}: {len(found.measurements)} row(s) written to {arguments.output}")
    for line in median_lines(found):
        print(line)
    return 0


def billing_command(arguments: argparse.Namespace) -> int:
    """`billing report`: 0 when written, 2 for a period that is neither a month nor a quarter."""
    config = loader(arguments)()
    try:
        period = period_of(arguments.period)
    except BadPeriod as error:
        print(error, file=sys.stderr)
        return 2
    engine = open_index(config)
    try:
        report = billing_report(engine, period, config.billing)
    finally:
        engine.dispose()
    arguments.output.write_text(report_csv(report, FRENCH), encoding="utf-8")
    details = (("billable", str(len(report.billable))), ("excluded", str(len(report.excluded))))
    record_export(config, "billing", period.name, details)
    print(f"{period.name}: {len(report.billable)} billable, {len(report.excluded)} out of scope, {report.total} EUR")
    return 0


def record_export(config: Config, name: str, period: str, details: tuple[tuple[str, str], ...]) -> None:
    trail = AuditTrail(config.audit.database)
    try:
        participants = (local_user(), this_application("appliance-cli"))
        objects = (exported_report(name, period, details),)
        trail.record(AuditEvent(EventId.EXPORT, Action.EXECUTE, Outcome.SUCCESS, participants, objects))
    finally:
        trail.close()
