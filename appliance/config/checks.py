"""What the JSON Schema cannot say: addresses that are neither an IP address nor a host name, two
services on one port, and why an AE title is refused, in words.

Each check takes the default-filled document (possibly with schema errors elsewhere: values of the
wrong type are skipped here, the schema already reported them) and returns `Problem`s naming the key.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

Key = tuple[str | int, ...]

AE_TITLE_MAXIMUM_LENGTH = 16  # PS3.5 6.2, VR AE
HOST_NAME_MAXIMUM_LENGTH = 253  # RFC 1035 2.3.4
HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")  # RFC 1123 2.1
# The services that listen, by section: each has `bind_address` and `port` (0: any free port).
LISTENERS = ("dicom", "worklist", "hl7")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration, at `key` (`("peers", 1, "host")`)."""

    key: Key
    message: str


def mapping(value: Any) -> dict[str, Any]:
    """`value` when it is a mapping, else an empty one (the schema reports the wrong type)."""
    return value if isinstance(value, dict) else {}


def mappings(value: Any) -> list[tuple[int, dict[str, Any]]]:
    """The mapping items of a list with their positions (others are reported by the schema)."""
    if not isinstance(value, list):
        return []
    return [(position, item) for position, item in enumerate(value) if isinstance(item, dict)]


def ae_title_problem(value: str) -> str:
    """Why `value` is not a usable AE title, in words ('' when it is one)."""
    if not value.strip():
        return "AE title may not be empty or only spaces"
    if len(value) > AE_TITLE_MAXIMUM_LENGTH:
        return f"AE title longer than {AE_TITLE_MAXIMUM_LENGTH} characters ({value!r} has {len(value)})"
    if "\\" in value or any(ord(character) < 0x20 or ord(character) == 0x7F for character in value):
        return f"AE title may not contain a backslash or control characters ({value!r})"
    if not value.isascii():
        return f"AE title may hold only ASCII letters, digits, spaces and punctuation ({value!r})"
    if value != value.strip():
        return f"AE title may not begin or end with a space ({value!r})"
    return ""


def is_ip_address(value: str) -> bool:
    """Whether `value` is an IPv4 or IPv6 address (a scope as in `fe80::1%eth0` included)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_host_name(value: str) -> bool:
    """A host name as RFC 1123 allows it (a trailing dot is fine); its last label is not all digits,
    so that `192.168.1.300` is not taken for a name."""
    name = value.removesuffix(".")
    if not name or len(name) > HOST_NAME_MAXIMUM_LENGTH:
        return False
    labels = name.split(".")
    return all(HOST_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def host_problem(value: Any) -> str:
    """Why `value` cannot be an address to connect to or listen on ('' when it can, or is not text)."""
    if not isinstance(value, str) or is_ip_address(value) or is_host_name(value):
        return ""
    return f"{value!r} is neither an IP address nor a valid host name"


def host_problems(document: dict[str, Any]) -> list[Problem]:
    """Every peer host, bind address and RIS host that is neither an IP address nor a host name."""
    candidates: list[tuple[Key, Any]] = [
        ((section, "bind_address"), mapping(document.get(section)).get("bind_address")) for section in LISTENERS
    ]
    candidates += [
        (("peers", position, "host"), peer.get("host"))
        for position, peer in mappings(document.get("peers"))
        if peer.get("host") != ""  # the schema says it may not be empty
    ]
    ris_host = mapping(mapping(document.get("hl7")).get("ris")).get("host")
    if ris_host != "":  # empty: no RIS
        candidates.append((("hl7", "ris", "host"), ris_host))
    trusted = mapping(mapping(document.get("hl7")).get("connections")).get("trusted_addresses")
    if isinstance(trusted, list):
        candidates += [
            (("hl7", "connections", "trusted_addresses", position), host) for position, host in enumerate(trusted)
        ]
    return [Problem(key, problem) for key, value in candidates if (problem := host_problem(value))]


def addresses_overlap(first: str, second: str) -> bool:
    """Whether listening on both addresses needs the same port twice: the same address, or a wildcard
    that covers the other (0.0.0.0 covers IPv4 and names; :: covers everything, dual stack)."""
    return first == second or covers(first, second) or covers(second, first)


def covers(wildcard: str, other: str) -> bool:
    """Whether listening on `wildcard` (0.0.0.0 or ::) takes the port of `other` as well."""
    try:
        address = ipaddress.ip_address(wildcard)
    except ValueError:
        return False
    if not address.is_unspecified:
        return False
    return address.version == 6 or not is_ip_address(other) or ipaddress.ip_address(other).version == 4


def port_problems(document: dict[str, Any]) -> list[Problem]:
    """Two services that would listen on the same port of overlapping addresses (port 0 never clashes)."""
    listeners = [(section, mapping(document.get(section))) for section in LISTENERS]
    problems = []
    for position, (section, settings) in enumerate(listeners):
        for earlier_section, earlier in listeners[:position]:
            if same_socket(settings, earlier):
                problems.append(
                    Problem(
                        (section, "port"),
                        f"port {settings['port']} is also {earlier_section}.port, on overlapping addresses "
                        f"({earlier_section}.bind_address {earlier['bind_address']}, "
                        f"{section}.bind_address {settings['bind_address']})",
                    )
                )
                break
    return problems


def same_socket(first: dict[str, Any], second: dict[str, Any]) -> bool:
    """Whether two listeners' settings name the same non-zero port on overlapping addresses."""
    port, address = first.get("port"), first.get("bind_address")
    other_port, other_address = second.get("port"), second.get("bind_address")
    if not isinstance(port, int) or port == 0 or port != other_port:
        return False
    return isinstance(address, str) and isinstance(other_address, str) and addresses_overlap(address, other_address)


def mail_problems(document: dict[str, Any]) -> list[Problem]:
    """A relay login needs its password file."""
    mail = mapping(document.get("mail"))
    if mail.get("username") and not mail.get("password_file"):
        return [Problem(("mail", "password_file"), "required when mail.username is set")]
    return []


def threshold_problems(document: dict[str, Any]) -> list[Problem]:
    """A critical free-space threshold must be below the warning one, or every warning is critical."""
    monitor = mapping(document.get("monitor"))
    warning, critical = monitor.get("free_space_warning_percent"), monitor.get("free_space_critical_percent")
    if isinstance(warning, int) and isinstance(critical, int) and critical >= warning:
        message = f"{critical} must be below monitor.free_space_warning_percent ({warning})"
        return [Problem(("monitor", "free_space_critical_percent"), message)]
    return []


def hl7_connection_problems(document: dict[str, Any]) -> list[Problem]:
    """The reserved MLLP connections must leave room for the others, and fit in the maximum."""
    connections = mapping(mapping(document.get("hl7")).get("connections"))
    maximum, reserved = connections.get("maximum"), connections.get("reserved")
    if isinstance(maximum, int) and isinstance(reserved, int) and reserved >= maximum:
        return [
            Problem(("hl7", "connections", "reserved"), f"{reserved} must be below hl7.connections.maximum ({maximum})")
        ]
    return []


MINIMUM_RETENTION_YEARS = {"private_practice": 5, "health_establishment": 20}


def retention_problems(document: dict[str, Any]) -> list[Problem]:
    """Years below the practice's legal minimum would list studies too early (R2)."""
    retention = mapping(document.get("retention"))
    practice, years = retention.get("practice", "private_practice"), retention.get("years", 0)
    minimum = MINIMUM_RETENTION_YEARS.get(str(practice))
    if isinstance(years, int) and minimum is not None and 0 < years < minimum:
        return [Problem(("retention", "years"), f"{years} is below the minimum of {minimum} years for {practice}")]
    return []


def tier_problems(document: dict[str, Any]) -> list[Problem]:
    """A deferred folder needs its directory, an S3 tier its bucket."""
    tiers = mapping(document.get("tiers"))
    deferred = tiers.get("deferred", "none")
    if deferred == "folder" and not tiers.get("directory"):
        return [Problem(("tiers", "directory"), "required when tiers.deferred is folder")]
    if deferred == "s3" and not mapping(tiers.get("s3")).get("bucket"):
        return [Problem(("tiers", "s3", "bucket"), "required when tiers.deferred is s3")]
    return []


def pattern_problems(document: dict[str, Any]) -> list[Problem]:
    """Regular expressions of the dose and billing sections that Python cannot compile."""
    dose, billing = mapping(document.get("dose")), mapping(document.get("billing"))
    candidates: list[tuple[Key, Any]] = [
        (("dose", "screen_series_patterns", position), value)
        for position, value in enumerate(listed(dose.get("screen_series_patterns")))
    ]
    candidates += [
        (("billing", "obstetric_patterns", position), value)
        for position, value in enumerate(listed(billing.get("obstetric_patterns")))
    ]
    for position, exam_type in mappings(dose.get("exam_types")):
        candidates += [
            (("dose", "exam_types", position, "patterns", number), value)
            for number, value in enumerate(listed(exam_type.get("patterns")))
        ]
    return [Problem(key, f"not a regular expression: {error}") for key, error in compile_errors(candidates)]


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def compile_errors(candidates: list[tuple[Key, Any]]) -> list[tuple[Key, str]]:
    errors = []
    for key, value in candidates:
        if not isinstance(value, str):
            continue
        try:
            re.compile(value)
        except re.error as error:
            errors.append((key, str(error)))
    return errors
