"""What is told about the tunnel, in French for the practice and its contractor: the mails of an
opening, a closing and an expiry, the sentence the dashboard shows, and the details the audit
records carry (the audit events themselves are built by the console and the worker, which own
the audit trail). The reason is the administrator's own words: it goes to the audit trail and the
mails, never to the general logs.
"""

from __future__ import annotations

from datetime import datetime

from appliance.config import Config
from appliance.maintenance.state import EXPIRED, Opening
from appliance.practice_time import day_of, local

AUDIT_OBJECT_ID = "maintenance-tunnel"
AUDIT_OBJECT_NAME = "Maintenance tunnel"


def clock(moment: datetime) -> str:
    """15 h 30 (the practice's time)."""
    on_the_clock = local(moment)
    return f"{on_the_clock.hour} h {on_the_clock.minute:02d}"


def moment_words(moment: datetime, now: datetime) -> str:
    """« à 15 h 30 » today, « le 14/03/2026 à 15 h 30 » another day."""
    day, today = day_of(moment), day_of(now)
    if day == today:
        return f"à {clock(moment)}"
    return f"le {day:%d/%m/%Y} à {clock(moment)}"


def until_words(moment: datetime, now: datetime) -> str:
    """« jusqu'à 15 h 30 » today, « jusqu'au 14/03/2026 à 15 h 30 » another day."""
    words = moment_words(moment, now)
    return f"jusqu'{words}" if words.startswith("à ") else f"jusqu'au {words.removeprefix('le ')}"


def who(opening: Opening) -> str:
    return f"{opening.opened_by_name} ({opening.opened_by})" if opening.opened_by_name else opening.opened_by


def open_sentence(opening: Opening, now: datetime) -> str:
    """The dashboard's line: « Accès de maintenance ouvert jusqu'à 15 h 30 (par Dr X). »"""
    name = opening.opened_by_name or opening.opened_by
    return f"Accès de maintenance ouvert {until_words(opening.until, now)} (par {name})."


def bastion(config: Config) -> str:
    maintenance = config.maintenance
    return f"{maintenance.bastion_user}@{maintenance.bastion_host}:{maintenance.bastion_port}"


def opened_mail(config: Config, opening: Opening) -> tuple[str, str]:
    """(subject, body) of the mail sent when the tunnel is opened."""
    until = until_words(opening.until, opening.opened_at)
    body = (
        f"L'accès de maintenance du PACS « {config.site_name} » a été ouvert par {who(opening)}, "
        f"depuis le poste {opening.address or 'inconnu'}, le {day_of(opening.opened_at):%d/%m/%Y} "
        f"à {clock(opening.opened_at)}.\n\n"
        f"Il se fermera de lui-même {moment_words(opening.until, opening.opened_at)} ({opening.hours:g} h).\n"
        f"Motif : {opening.reason}\n"
        f"Accord du cabinet : {'oui' if opening.consent else 'non'}\n"
        f"Serveur du prestataire : {bastion(config)}\n\n"
        "Pour le fermer avant : console du PACS, page « Accès de maintenance », bouton « Fermer maintenant ».\n"
    )
    return f"Accès de maintenance ouvert {until}", body


def closed_mail(config: Config, opening: Opening) -> tuple[str, str]:
    """(subject, body) of the mail sent when the tunnel closes, at once or at its end."""
    closed_at = opening.closed_at or opening.until
    if opening.closed_because == EXPIRED:
        subject = "Accès de maintenance fermé (durée écoulée)"
        how = f"s'est fermé de lui-même à {clock(closed_at)}, à la fin de la durée accordée"
    else:
        subject = "Accès de maintenance fermé"
        how = f"a été fermé par {opening.closed_by} à {clock(closed_at)}"
    body = (
        f"L'accès de maintenance du PACS « {config.site_name} » {how}.\n\n"
        f"Il avait été ouvert par {who(opening)} le {day_of(opening.opened_at):%d/%m/%Y} "
        f"à {clock(opening.opened_at)}.\n"
        f"Motif : {opening.reason}\n"
    )
    return subject, body


def audit_details(opening: Opening) -> tuple[tuple[str, str], ...]:
    """The ParticipantObjectDetail pairs of the tunnel in an audit record."""
    details = [
        ("opened-by", opening.opened_by),
        ("opened-at", opening.opened_at.isoformat(timespec="seconds")),
        ("until", opening.until.isoformat(timespec="seconds")),
        ("reason", opening.reason),
        ("consent", "yes" if opening.consent else "no"),
    ]
    if opening.closed_at is not None:
        details += [("closed-at", opening.closed_at.isoformat(timespec="seconds")), ("closed", opening.closed_because)]
    if opening.closed_by:
        details.append(("closed-by", opening.closed_by))
    return tuple(details)
