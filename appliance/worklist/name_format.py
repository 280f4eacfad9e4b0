"""Patient's Name as each modality wants it (W2): which of the identity's names is the family name,
which components are sent, in which case; a civility is never sent in the suffix component.

A PN value holds up to three component groups (alphabetic, ideographic, phonetic, separated by `=`)
of five components each (family, given, middle, prefix, suffix, separated by `^`; PS3.5 6.2.1).
A patient known from the RIS has an identity (`patient_identity`, IHE PAM FR): its family and given
names come from the birth name or the used name, as the profile says; the middle name, prefix and
suffix from the recorded name. A patient created from images has no identity: its recorded name is
used as it is. The length limit and the character set come afterwards (`profiles.adapted`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from appliance.config.loader import WorklistProfile
from appliance.patients.names import fold

COMPONENTS = ("family", "given", "middle", "prefix", "suffix")
FAMILY, GIVEN, MIDDLE, PREFIX, SUFFIX = range(len(COMPONENTS))
# Civilities, folded and without a final dot. PAM FR puts M. or Mme in XPN-5, which a copy by
# position moves to the DICOM suffix (`VANILLA^LAURA^^^Mme`): the prefix is where they belong.
CIVILITIES = frozenset({"M", "MME", "MLLE", "MONSIEUR", "MADAME", "MADEMOISELLE", "MR", "MRS", "MS", "MISS"})


@dataclass(frozen=True)
class IdentityNames:
    """The names the RIS gave a patient (PID-5 repetitions L and D); empty strings when not sent."""

    birth_name: str
    first_given_name: str
    used_name: str
    used_given_name: str

    def family_and_given(self, family_name: str) -> tuple[str, str] | None:
        """The birth name (`family_name` "birth") or the used name ("used") with its given name, each
        falling back on the other name when empty; None when the identity holds no name at all."""
        birth = (self.birth_name, self.first_given_name)
        used = (self.used_name, self.used_given_name)
        chosen, other = (used, birth) if family_name == "used" else (birth, used)
        if chosen[0]:
            return chosen[0], chosen[1] or other[1]
        if other[0]:
            return other[0], other[1] or chosen[1]
        return None


def identity_names(item: Mapping[str, Any]) -> IdentityNames | None:
    """The identity's names of a worklist item (None for a patient without identity: from images)."""
    if item.get("birth_name") is None:
        return None
    return IdentityNames(
        birth_name=item["birth_name"],
        first_given_name=item["first_given_name"],
        used_name=item["used_name"],
        used_given_name=item["used_given_name"],
    )


def patient_name(item: Mapping[str, Any], profile: WorklistProfile) -> str:
    """Patient's Name (0010,0010) of a worklist item, formatted as `profile` says."""
    groups = [components_of(group) for group in str(item["patient_name"]).split("=")]
    identity = identity_names(item)
    names = identity.family_and_given(profile.patient_family_name) if identity else None
    if names is not None:
        groups[0][FAMILY], groups[0][GIVEN] = names
    sent = set(profile.patient_name_components)
    text = "=".join(joined(civility_as_prefix(group), sent) for group in groups).rstrip("=")
    return text.upper() if profile.patient_name_case == "upper" else text


def components_of(group: str) -> list[str]:
    """The five components of one component group, empty ones included."""
    components = group.split("^")[: len(COMPONENTS)]
    return components + [""] * (len(COMPONENTS) - len(components))


def civility_as_prefix(components: list[str]) -> list[str]:
    """A civility found in the suffix moves to the prefix (dropped when the prefix holds one)."""
    if fold(components[SUFFIX]).strip().rstrip(".") not in CIVILITIES:
        return components
    return [*components[:PREFIX], components[PREFIX] or components[SUFFIX], ""]


def joined(components: list[str], sent: set[str]) -> str:
    """The components the profile sends, the others left empty; trailing empty ones dropped."""
    kept = [value if name in sent else "" for name, value in zip(COMPONENTS, components, strict=True)]
    return "^".join(kept).rstrip("^")
