"""The last quality-control report as the monitor sees it (Q1), read from the table `qc_report`
(through `appliance.db.schema`: `appliance.qc` builds on the monitor, not the other way round).

A report with a failure is critical, one "à surveiller" a warning; no report for more than 36
hours (the daily run has stopped) a warning; none yet: OK, said. A report waiting for the
radiologist's sign-off is said in the message, not judged.
"""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from appliance.db import as_utc
from appliance.db.schema import qc_report
from appliance.monitor.findings import Finding, Reading, Severity
from appliance.monitor.sources import Context

SOURCE = "qc"
SUBJECT = "report"
MAXIMUM_AGE = timedelta(hours=36)
SEVERITIES = {"ok": Severity.OK, "warning": Severity.WARNING, "failure": Severity.CRITICAL}


def read(context: Context) -> Reading:
    query = select(qc_report).order_by(qc_report.c.day.desc()).limit(1)
    with context.engine.connect() as connection:
        row = connection.execute(query).first()
    if row is None:
        return Reading(
            [Finding(SOURCE, SUBJECT, Severity.OK, "Aucun rapport de contrôle qualité n'a encore été fait.")]
        )
    produced_at = as_utc(row.produced_at)
    day = f"{row.day:%d/%m/%Y}"
    if context.now - produced_at > MAXIMUM_AGE:
        message = f"Le dernier rapport de contrôle qualité date du {day} : le contrôle quotidien ne s'est pas fait."
        return Reading([Finding(SOURCE, SUBJECT, Severity.WARNING, message, since=produced_at + MAXIMUM_AGE)])
    severity = SEVERITIES.get(row.status, Severity.WARNING)
    failing = failing_titles(row.facts)
    signed = "visé" if row.signed_at is not None else "en attente du visa du radiologue"
    if severity is Severity.OK:
        message = f"Contrôle qualité du {day} conforme ({signed})."
    else:
        word = "en échec" if severity is Severity.CRITICAL else "à surveiller"
        message = f"Contrôle qualité du {day} {word} : {', '.join(failing) or 'voir le rapport'}."
    return Reading([Finding(SOURCE, SUBJECT, severity, message, f"report {row.id}, facts {row.facts_sha256}")])


def failing_titles(facts: str) -> list[str]:
    """The titles of the sections that are not fine (from the stored JSON; [] when unreadable)."""
    try:
        sections = json.loads(facts)["sections"]
        return [str(item["title"]) for item in sections if item["status"] in ("warning", "failure")]
    except (ValueError, KeyError, TypeError):
        return []
