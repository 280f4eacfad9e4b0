"""Words the viewer and the study page share: key-image titles (CID 7010) in the reader's language,
and the window presets of the viewer."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.archive.key_images import TITLES
from appliance.web.forms import lazy

TITLE_WORDS: dict[str, str] = {
    "113000": lazy("Of interest"),
    "113002": lazy("For the referring physician"),
    "113003": lazy("For surgery"),
    "113004": lazy("For teaching"),
    "113005": lazy("For a conference"),
    "113006": lazy("For therapy"),
    "113007": lazy("For the patient"),
    "113008": lazy("For peer review"),
    "113009": lazy("For research"),
    "113010": lazy("Quality issue"),
    "113013": lazy("Best in set"),
    "113018": lazy("For printing"),
    "113020": lazy("For the report"),
    "113021": lazy("For litigation"),
    "128195": lazy("For diagnosis"),
    "128201": lazy("For physician review"),
    "128203": lazy("For the tumour board"),
}


@dataclass(frozen=True)
class Preset:
    """A window preset: its name for people, its key for scripts and tests, width and centre (HU)."""

    key: str
    label: str
    width: int
    center: int


PRESETS = (
    Preset("lung", lazy("Lung"), 1500, -600),
    Preset("bone", lazy("Bone"), 1800, 400),
    Preset("soft-tissue", lazy("Soft tissue"), 400, 40),
    Preset("brain", lazy("Brain"), 80, 40),
)


def title_words(code_value: str, meaning: str) -> str:
    """A KOS title in the reader's language; the document's own meaning for a title we do not know."""
    words = TITLE_WORDS.get(code_value)
    return str(words) if words is not None else meaning


def title_choices() -> list[tuple[str, str]]:
    """The titles a radiologist may give flagged images, "Of interest" first (the default)."""
    return [(title.value, title_words(title.value, title.meaning)) for title in TITLES]
