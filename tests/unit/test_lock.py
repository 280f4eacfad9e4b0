"""The lock file pins every requirement pip meets on its way, extras included.

pip in hash mode resolves a dependency asked for with extras (WeasyPrint's `fonttools[woff]>=…`) as
a requirement of its own: unless the lock names it with those extras, pip looks past the pin for the
newest release in range, and refuses the install when one appears. CI met that when fonttools 4.69.1
came out; this check finds the next such requirement before a new release on PyPI does.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCK = Path(__file__).resolve().parents[2] / "requirements.lock"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)(?:\[(?P<extras>[^\]]+)\])?==(?P<version>[^\s;]+)", re.MULTILINE)


def locked() -> dict[str, tuple[set[str], str]]:
    """Each locked project's extras and version, by canonical name."""
    pins: dict[str, tuple[set[str], str]] = {}
    for match in PIN.finditer(LOCK.read_text(encoding="utf-8")):
        extras = {canonicalize_name(extra) for extra in (match["extras"] or "").split(",") if extra}
        pins[canonicalize_name(match["name"])] = (extras, match["version"])
    return pins


def asked_with_extras(pins: dict[str, tuple[set[str], str]]) -> list[tuple[str, Requirement]]:
    """The requirements with extras that the installed, locked projects make outside their own extras."""
    asked = []
    for name in pins:
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue  # locked for another platform or Python
        for text in requires:
            requirement = Requirement(text)
            applies = requirement.marker is None or requirement.marker.evaluate({"extra": ""})
            if requirement.extras and applies:
                asked.append((name, requirement))
    return asked


def extras_of(requirement: Requirement) -> set[str]:
    return {canonicalize_name(extra) for extra in requirement.extras}


def test_the_lock_parses_to_the_installed_versions() -> None:
    pins = locked()
    assert len(pins) > 100
    assert pins["fonttools"][1] == importlib.metadata.version("fonttools")


def test_every_requirement_with_extras_is_pinned_with_them() -> None:
    pins = locked()
    asked = asked_with_extras(pins)
    assert asked, "WeasyPrint asks for fonttools[woff]: the check must see it"
    unpinned = [
        f"{name} asks for {requirement}"
        for name, requirement in asked
        if not extras_of(requirement) <= pins[canonicalize_name(requirement.name)][0]
    ]
    assert not unpinned, "pin these with their extras in requirements.lock: " + "; ".join(unpinned)
