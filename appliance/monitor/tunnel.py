"""The `tunnel` source: the maintenance tunnel (appliance.maintenance), for the dashboard's tile.

An open tunnel is information, not a problem (an administrator opened it, with a reason): OK with
« Accès de maintenance ouvert jusqu'à 15 h 30 (par Dr X). » and the remaining minutes as a
measure; closed: OK « fermé ». Open past its end by more than `OVERDUE_GRACE` (the worker records
an expiry within seconds): CRITICAL, the box may be reachable from outside without consent. An
unreadable state file: WARNING. No bastion configured: ABSENT.
"""

from __future__ import annotations

from datetime import timedelta

from appliance.maintenance.notices import moment_words, open_sentence
from appliance.maintenance.state import StateError, read_state, state_path
from appliance.monitor.findings import Finding, Measure, Reading, Severity
from appliance.monitor.sources import Context, absent

SOURCE = "tunnel"
SUBJECT = "maintenance"
OVERDUE_GRACE = timedelta(minutes=2)
REMAINING_MEASURE = "tunnel.remaining_minutes"


def read(context: Context) -> Reading:
    """One finding about the maintenance tunnel, and its remaining minutes (0 when closed)."""
    if not context.config.maintenance.enabled:
        return absent(
            SOURCE, "Pas d'accès de maintenance configuré sur ce boîtier.", "maintenance.bastion_host is empty"
        )
    path = state_path(context.config)
    try:
        opening = read_state(path)
    except StateError as error:
        message = "L'état de l'accès de maintenance est illisible : le prestataire doit regarder."
        return Reading([Finding(SOURCE, SUBJECT, Severity.WARNING, message, str(error))])
    now = context.now
    if opening is None or opening.closed_at is not None:
        return Reading([Finding(SOURCE, SUBJECT, Severity.OK, "Accès de maintenance fermé.")], [measure(0)])
    detail = f"opened by {opening.opened_by} at {opening.opened_at.isoformat()} until {opening.until.isoformat()}"
    if opening.is_open(now):
        minutes = opening.remaining(now) / timedelta(minutes=1)
        finding = Finding(SOURCE, SUBJECT, Severity.OK, open_sentence(opening, now), detail, opening.opened_at)
        return Reading([finding], [measure(minutes)])
    if now - opening.until <= OVERDUE_GRACE:
        return Reading([Finding(SOURCE, SUBJECT, Severity.OK, "Accès de maintenance en cours de fermeture.", detail)])
    message = (
        f"L'accès de maintenance aurait dû se fermer {moment_words(opening.until, now)} "
        "et sa fin n'a pas été enregistrée : vérifier que le travail de fond tourne, prévenir le prestataire."
    )
    return Reading([Finding(SOURCE, SUBJECT, Severity.CRITICAL, message, detail, opening.until)], [measure(0)])


def measure(minutes: float) -> Measure:
    return Measure(REMAINING_MEASURE, round(minutes, 1))
