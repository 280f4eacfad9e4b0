"""Folding of person names and other text for matching (PS3.4 C.2.2.2.1 allows PN matching that
ignores case and accents; French names need both: `Chloé`, `CHLOE`, `ŒUVRARD`, `OEUVRARD`)."""

from __future__ import annotations

import unicodedata

LIGATURES = {"Œ": "OE", "Æ": "AE", "ß": "SS"}


def fold(text: str) -> str:
    """Upper case, no accents, ligatures spelled out: the key person names are matched on."""
    upper = text.upper()
    for ligature, spelled in LIGATURES.items():
        upper = upper.replace(ligature, spelled)
    decomposed = unicodedata.normalize("NFKD", upper)
    return "".join(character for character in decomposed if not unicodedata.combining(character))


def person_name_key(name: str) -> str:
    """The folded key of a PN value: alphabetic group only, trailing empty components dropped."""
    alphabetic = name.split("=")[0]
    return fold(alphabetic).rstrip("^ ").strip()


def transliterate(text: str, keep_latin1: bool) -> str:
    """Text a modality can display: ASCII (or Latin-1) only, case kept, accents and ligatures spelled
    out (`Œuvrard` becomes `OEuvrard`, and `Hélène` becomes `Helene` when Latin-1 is not kept)."""
    characters = []
    for character in text:
        if character.isascii() or (keep_latin1 and ord(character) < 256):
            characters.append(character)
        elif character in SPELLED_OUT:
            characters.append(SPELLED_OUT[character])
        else:
            decomposed = unicodedata.normalize("NFKD", character)
            plain = "".join(part for part in decomposed if part.isascii() and not unicodedata.combining(part))
            characters.append(plain or "?")
    return "".join(characters)


SPELLED_OUT = {"Œ": "OE", "œ": "oe", "Æ": "AE", "æ": "ae", "ß": "ss"}
