"""The console's TLS certificate (the one nginx serves, `server.crt` of `certificates.tls_directory`):
expired CRITICAL (browsers refuse the console), fewer than `certificate_days_warning` days left
WARNING (the box renews it itself 30 days ahead, so this says the renewal did not happen). No
certificate (development, or before the first boot made one): ABSENT.
"""

from __future__ import annotations

from datetime import timedelta

from appliance.certificates import SERVER_CERTIFICATE, CertificateError, load_certificate, tls_directory
from appliance.monitor.findings import Finding, Reading, Severity
from appliance.monitor.sources import Context, absent

SOURCE = "certificate"
SUBJECT = "console"


def read(context: Context) -> Reading:
    """One finding about the console's certificate's expiry."""
    path = tls_directory(context.config) / SERVER_CERTIFICATE
    if not path.exists():
        return absent(SOURCE, "Pas de certificat pour la console sur cette machine.", f"{path} does not exist")
    try:
        certificate = load_certificate(path)
    except CertificateError as error:
        message = "Le certificat de la console est illisible : le prestataire doit regarder."
        return Reading([Finding(SOURCE, SUBJECT, Severity.WARNING, message, str(error))])
    end = certificate.not_valid_after_utc
    left = end - context.now
    days = left // timedelta(days=1)
    warning = context.config.monitor.certificate_days_warning
    detail = f"{path}: valid until {end.isoformat()} ({days} days left; warning below {warning})"
    if left <= timedelta(0):
        message = (
            "Le certificat de la console a expiré : les navigateurs l'affichent comme dangereuse. "
            "Prévenir le prestataire."
        )
        return Reading([Finding(SOURCE, SUBJECT, Severity.CRITICAL, message, detail, end)])
    if days < warning:
        message = (
            f"Le certificat de la console expire dans {days} jours et n'a pas été renouvelé : prévenir le prestataire."
        )
        return Reading([Finding(SOURCE, SUBJECT, Severity.WARNING, message, detail)])
    return Reading(
        [Finding(SOURCE, SUBJECT, Severity.OK, f"Certificat de la console valable encore {days} jours.", detail)]
    )
