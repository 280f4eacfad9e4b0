"""Every text the console shows is in French: each catalogue holds every text marked in its folder,
each has a translation, and the compiled `.mo` files say what the `.po` files say (`make
translations` keeps them so)."""

from __future__ import annotations

import gettext
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

WEB = Path(__file__).parents[3] / "appliance" / "web"
CATALOGUES = sorted(WEB.rglob("translations/fr/LC_MESSAGES/messages.po"))
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy": None}
METHODS = [("**.py", "python"), ("**.html", "jinja2")]


def folder_of(catalogue: Path) -> Path:
    return catalogue.parents[3]


def marked_texts(folder: Path) -> set[str]:
    """The texts marked for translation in `folder` (the core: its own files, not the features')."""
    texts = set()
    features = {catalogue.parents[3] for catalogue in CATALOGUES} - {WEB}
    for filename, _line, message, _comments, _context in extract_from_dir(folder, METHODS, keywords=KEYWORDS):
        if folder == WEB and any((folder / filename).is_relative_to(feature) for feature in features):
            continue
        texts.add(message if isinstance(message, str) else message[0])
    return texts


def test_there_are_catalogues() -> None:
    assert WEB / "translations/fr/LC_MESSAGES/messages.po" in CATALOGUES


@pytest.mark.parametrize("catalogue", CATALOGUES, ids=lambda path: str(folder_of(path).relative_to(WEB.parent)))
def test_every_marked_text_has_its_french_translation(catalogue: Path) -> None:
    with catalogue.open("rb") as file:
        messages = {
            message.id if isinstance(message.id, str) else message.id[0]: message
            for message in read_po(file)
            if message.id
        }
    missing = marked_texts(folder_of(catalogue)) - set(messages)
    assert not missing, f"run `make translations` and translate: {sorted(missing)}"
    untranslated = [
        text
        for text, message in messages.items()
        if not all(message.string if isinstance(message.string, tuple) else [message.string])
    ]
    assert not untranslated, f"no French for: {untranslated}"


@pytest.mark.parametrize("catalogue", CATALOGUES, ids=lambda path: str(folder_of(path).relative_to(WEB.parent)))
def test_the_compiled_catalogue_matches_its_source(catalogue: Path) -> None:
    with catalogue.open("rb") as file:
        messages = [message for message in read_po(file) if message.id and isinstance(message.id, str)]
    with catalogue.with_suffix(".mo").open("rb") as file:
        compiled = gettext.GNUTranslations(file)
    stale = [message.id for message in messages if compiled.gettext(message.id) != message.string]
    assert not stale, f"run `make translations`: {stale}"


def test_a_text_shared_by_two_catalogues_is_translated_the_same_in_both() -> None:
    """The catalogues are merged into one at run time: the last one read would win."""
    seen: dict[str, tuple[str, Path]] = {}
    clashes = []
    for catalogue in CATALOGUES:
        with catalogue.open("rb") as file:
            for message in read_po(file):
                if not message.id or not isinstance(message.id, str):
                    continue
                earlier = seen.setdefault(message.id, (message.string, catalogue))
                if earlier[0] != message.string:
                    where = f"{earlier[1].parts[-5]} / {catalogue.parts[-5]}"
                    clashes.append(f"{message.id!r}: {earlier[0]!r} / {message.string!r} ({where})")
    assert not clashes, "give these texts one translation, or different English: " + "; ".join(clashes)
