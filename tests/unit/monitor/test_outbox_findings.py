"""The outbox as the health monitor sees it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from appliance.monitor import Severity
from appliance.monitor.outbox import check
from appliance.outbox import Attempt, Outcome, RetryPolicy, enqueue, next_due, record


def test_parked_and_late_messages_are_findings(engine: Engine) -> None:
    with engine.begin() as connection:
        enqueue(connection, "hl7-ris", "change:1", "ORM^O01", b"", "ORM^O01 1")
        enqueue(connection, "storage-commitment:CT1", "commitment:1", "N-EVENT-REPORT", b"", "report 1")
    assert {finding.severity for finding in check(engine)} == {Severity.OK}
    message = next_due(engine, ("hl7-ris",))
    assert message is not None
    record(engine, message, Attempt(Outcome.REFUSED, "AE"), RetryPolicy(1, 1, refusals_before_parking=1))
    findings = check(engine, datetime.now(UTC) + timedelta(hours=2))
    assert [(finding.subject, finding.severity) for finding in findings] == [
        ("hl7-ris", Severity.WARNING),
        ("storage-commitment:CT1", Severity.WARNING),
    ]
    assert "mis de côté" in findings[0].message and "plus d'une heure" in findings[1].message
