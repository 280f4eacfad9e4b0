"""Which configured destinations an archived instance goes to (A7): each rule's criteria against
the instance's facts (the AE title that sent it, its series' modality, its SOP class, its study's
description). Wildcards `*` and `?`; descriptions compared with case and accents set aside."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

from appliance.config import ForwardRule
from appliance.patients.names import fold


@dataclass(frozen=True)
class InstanceFacts:
    """What the rules look at, for one archived instance."""

    calling_ae_title: str
    modality: str
    sop_class_uid: str
    study_description: str


def wildcard(value: str, patterns: Iterable[str], folded: bool = False) -> bool:
    """Whether `value` matches one of `patterns` (`*` any run, `?` one character)."""
    subject = fold(value) if folded else value
    for pattern in patterns:
        wanted = fold(pattern) if folded else pattern
        if fnmatch.fnmatchcase(subject, wanted):
            return True
    return False


def matches(rule: ForwardRule, facts: InstanceFacts) -> bool:
    """Every criterion the rule sets matches (a rule without criteria matches everything)."""
    return (
        rule.enabled
        and (not rule.calling_ae_titles or wildcard(facts.calling_ae_title, rule.calling_ae_titles))
        and (not rule.modalities or facts.modality.upper() in {modality.upper() for modality in rule.modalities})
        and (not rule.sop_classes or facts.sop_class_uid in rule.sop_classes)
        and (not rule.study_descriptions or wildcard(facts.study_description, rule.study_descriptions, folded=True))
    )


def destinations(rules: Iterable[ForwardRule], facts: InstanceFacts) -> list[str]:
    """The destinations of the rules the instance matches, each once, in rule order; never the
    AE title that sent it (a study fetched from the regional PACS does not go back to it)."""
    found: list[str] = []
    for rule in rules:
        if matches(rule, facts) and rule.destination not in found and rule.destination != facts.calling_ae_title:
            found.append(rule.destination)
    return found
