"""Person names: the folded key they are matched on, how a query matches it, and text a modality can
display.

PS3.4 C.2.2.2.1 allows PN matching that ignores case and accents, and French names need both
(`Chloé`, `CHLOE`). The key keeps the ligatures Œ, Æ and ẞ as one character each, so that `?` (one
character, PS3.4 C.2.2.2.4) lines up with them: `B?UF*` finds BŒUF and `B??UF*` does not. A query
typed with the letters spelled out (`OEUVRARD`, `OEUV*`) still finds ŒUVRARD: it is matched in
every spelling of its letter pairs, ligature or letters (`spellings`), each on the indexed key.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from sqlalchemy import ColumnElement, or_

# A folded ligature and the letters it stands for.
LIGATURES = {"Œ": "OE", "Æ": "AE", "ẞ": "SS"}
# A query with more letter pairs than this keeps the rest as typed (2 ** 5 alternatives at most).
MAXIMUM_SPELLINGS = 32
LIKE_ESCAPE = "!"
# Words of a name typed in a search box beyond this are ignored (each split is an alternative).
MAXIMUM_TYPED_WORDS = 5


def fold(text: str) -> str:
    """Upper case, no accents, ligatures kept as one character (ß becomes its capital ẞ, not SS)."""
    upper = text.replace("ß", "ẞ").upper()
    decomposed = unicodedata.normalize("NFKD", upper)
    return "".join(character for character in decomposed if not unicodedata.combining(character))


def person_name_key(name: str) -> str:
    """The folded key of a PN value: alphabetic group only, trailing empty components dropped."""
    alphabetic = name.split("=")[0]
    return fold(alphabetic).rstrip("^ ").strip()


def spellings(key: str) -> list[str]:
    """Every way of writing a folded key with its letter pairs as ligatures or as letters: `OEUF*`
    gives `OEUF*` and `ŒUF*`, `ŒUF` gives `ŒUF` and `OEUF`; a pair's first letter just before `*`
    may also begin a ligature (`O*` gives `O*` and `Œ*`)."""
    found = [""]
    position = 0
    while position < len(key):
        choices, length = choices_at(key, position)
        if len(found) * len(choices) > MAXIMUM_SPELLINGS:
            choices = choices[:1]
        found = [start + choice for start in found for choice in choices]
        position += length
    return found


def choices_at(key: str, position: int) -> tuple[list[str], int]:
    """The spellings of what starts at `position` in `key`, and how many characters it takes."""
    character = key[position]
    if character in LIGATURES:
        return [character, LIGATURES[character]], 1
    for ligature, letters in LIGATURES.items():
        if key.startswith(letters, position):
            return [letters, ligature], 2
        if key.startswith(letters[0] + "*", position):
            return [letters[0], ligature], 1
    return [character], 1


def person_name_match(column: Any, value: str) -> ColumnElement[bool]:
    """The condition on a folded key column (`person_name_key`) for a PN matching key: single value
    (PS3.4 C.2.2.2.1) or wildcards `*` and `?` (C.2.2.2.4), whatever the case, the accents and the
    spelling of ligatures. Every alternative is an equality or a LIKE on the key: an index serves it."""
    keys = spellings(person_name_key(value))
    exact = [key for key in keys if "*" not in key and "?" not in key]
    conditions: list[ColumnElement[bool]] = [
        column.like(like_pattern(key), escape=LIKE_ESCAPE) for key in keys if key not in exact
    ]
    if exact:
        conditions.append(column == exact[0] if len(exact) == 1 else column.in_(exact))
    return conditions[0] if len(conditions) == 1 else or_(*conditions)


def typed_name_match(column: Any, typed: str) -> ColumnElement[bool]:
    """The condition on a folded key column for a name typed in a search box, the way people type
    it: the beginning of the family name (`coeur` finds CŒUR^Marie), or family name then given
    name (`dupont mar`), or given name then family name (`marie dupont`); a `^` typed keeps the
    components as typed. Whatever the case, the accents and the spelling of ligatures."""
    if "^" in typed:
        return person_name_match(column, typed.strip().rstrip("*") + "*")
    words = typed.replace(",", " ").split()[:MAXIMUM_TYPED_WORDS]
    patterns = [" ".join(words) + "*"]
    for split in range(1, len(words)):
        first, rest = " ".join(words[:split]), " ".join(words[split:])
        patterns += [f"{first}^{rest}*", f"{rest}^{first}*"]
    conditions = [person_name_match(column, pattern.replace("**", "*")) for pattern in patterns]
    return conditions[0] if len(conditions) == 1 else or_(*conditions)


def french_name(name: str) -> str:
    """A PN value the way French forms show it: family name in capitals, then the given and middle
    names as recorded (`ŒUVRARD Chloé`); other component groups and the civility left out."""
    components = name.split("=")[0].split("^")
    family = components[0].strip().upper()
    others = [component.strip() for component in components[1:3] if component.strip()]
    return " ".join([family, *others]).strip()


def like_pattern(value: str) -> str:
    """A DICOM wildcard value (PS3.4 C.2.2.2.4: `*` any run, `?` one character) as a LIKE pattern
    escaped with `LIKE_ESCAPE` (a `%` or `_` in the value is matched literally)."""
    escaped = value.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", "!%").replace("_", "!_")
    return escaped.replace("*", "%").replace("?", "_")


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


SPELLED_OUT = {"Œ": "OE", "œ": "oe", "Æ": "AE", "æ": "ae", "ß": "ss", "ẞ": "SS"}
