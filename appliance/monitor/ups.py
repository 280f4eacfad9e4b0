"""The UPS (H3), read from NUT's upsd with nut2 (PyNUTClient) at `config.monitor.ups` host and port.

NUT's upsmon performs the shutdown on low battery; this only reads and tells: on line OK, on battery
WARNING (with charge and runtime), low battery or forced shutdown CRITICAL, upsd unreachable or the
UPS unknown to it CRITICAL (a power cut would then stop the box uncleanly). No UPS configured
(`monitor.ups.name` empty): ABSENT. Measures `ups.<name>.charge` (percent) and `ups.<name>.runtime`
(seconds) each round, which the dashboard plots over the last outage.
"""

from __future__ import annotations

import warnings
from typing import Any

from appliance.config import UpsConfig
from appliance.monitor.findings import Finding, Measure, Reading, Severity
from appliance.monitor.sources import Context, absent

SOURCE = "ups"
TIMEOUT_SECONDS = 5


class UpsUnreachable(Exception):
    """upsd did not answer, or not about this UPS (the message says what it said)."""


def read(context: Context) -> Reading:
    """One finding about the configured UPS, with its charge and runtime as measures."""
    ups = context.config.monitor.ups
    if not ups.enabled:
        return absent(SOURCE, "Pas d'onduleur surveillé sur cette machine.", "monitor.ups.name is empty")
    try:
        variables = ups_variables(ups)
    except UpsUnreachable as error:
        message = "L'onduleur ne répond pas : en cas de coupure de courant, le boîtier ne s'arrêterait pas proprement."
        return Reading([Finding(SOURCE, ups.name, Severity.CRITICAL, message, f"upsd {address(ups)}: {error}")])
    return Reading([status_finding(ups.name, variables)], measures(ups.name, variables))


def ups_variables(ups: UpsConfig) -> dict[str, str]:
    """Every variable upsd has about the UPS (`LIST VAR`), or UpsUnreachable."""
    with warnings.catch_warnings():  # nut2 talks through telnetlib, deprecated since Python 3.11
        warnings.simplefilter("ignore", DeprecationWarning)
        from nut2 import PyNUTClient, PyNUTError  # type: ignore[import-untyped]
    try:
        with PyNUTClient(host=ups.host, port=ups.port, timeout=TIMEOUT_SECONDS) as client:
            variables: dict[str, Any] = client.list_vars(ups.name)
    except (PyNUTError, OSError, EOFError, ValueError) as error:
        raise UpsUnreachable(str(error) or type(error).__name__) from error
    return {str(name): str(value) for name, value in variables.items()}


def address(ups: UpsConfig) -> str:
    return f"{ups.name}@{ups.host}:{ups.port}"


def status_finding(name: str, variables: dict[str, str]) -> Finding:
    """What `ups.status` (OL, OB, LB, FSD, RB, OVER ... PS: NUT's flags) means for the practice."""
    flags = set(variables.get("ups.status", "").split())
    detail = (
        f"ups.status {variables.get('ups.status', '?')}, battery.charge {variables.get('battery.charge', '?')} %, "
        f"battery.runtime {variables.get('battery.runtime', '?')} s, "
        f"{variables.get('device.mfr', variables.get('ups.mfr', ''))} {variables.get('device.model', '')}".strip()
    )
    if flags & {"LB", "FSD"}:
        message = "Batterie de l'onduleur presque vide : le boîtier s'arrête proprement pour protéger les images."
        return Finding(SOURCE, name, Severity.CRITICAL, message, detail)
    if "OB" in flags:
        message = f"Coupure de courant : le boîtier fonctionne sur la batterie de l'onduleur ({battery(variables)})."
        return Finding(SOURCE, name, Severity.WARNING, message, detail)
    if "RB" in flags:
        return Finding(SOURCE, name, Severity.WARNING, "La batterie de l'onduleur est à remplacer.", detail)
    if "OVER" in flags:
        message = "L'onduleur est surchargé : trop d'appareils y sont branchés."
        return Finding(SOURCE, name, Severity.WARNING, message, detail)
    if "OL" in flags:
        return Finding(SOURCE, name, Severity.OK, f"Onduleur sur secteur ({battery(variables)}).", detail)
    message = "L'état de l'onduleur est inconnu : le prestataire doit regarder."
    return Finding(SOURCE, name, Severity.WARNING, message, detail)


def battery(variables: dict[str, str]) -> str:
    """`batterie à 80 %, environ 25 min d'autonomie`, with what the UPS reports."""
    parts = []
    charge = number(variables.get("battery.charge"))
    if charge is not None:
        parts.append(f"batterie à {charge:.0f} %")
    runtime = number(variables.get("battery.runtime"))
    if runtime is not None:
        parts.append(f"environ {runtime / 60:.0f} min d'autonomie")
    return ", ".join(parts) or "charge inconnue"


def measures(name: str, variables: dict[str, str]) -> list[Measure]:
    found = []
    for variable, measure in (("battery.charge", "charge"), ("battery.runtime", "runtime")):
        value = number(variables.get(variable))
        if value is not None:
            found.append(Measure(f"ups.{name}.{measure}", value))
    return found


def number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None
