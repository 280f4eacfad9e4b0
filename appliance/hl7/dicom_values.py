"""What a value read from HL7 must be to become a DICOM attribute of the worklist or the index
(PS3.5 6.2, value representations), and HL7 timestamps (DTM) that become DA and TM.

Each `*_problem` function returns what is wrong, in French and in English (the text goes to ERR-8 or
MSA-3 of the AE), or "" when the value may be stored. None of them quotes the value: an answer may
be logged, and a value may be patient data. `segments.checked` turns a problem into the AE the router
answers (ERR-3 `102`, data type error, and ERR-2 the field).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime

SHORT_STRING = 16  # SH: Accession Number, Requested Procedure ID, SPS ID, Scheduled Station Name, Code Value
LONG_STRING = 64  # LO: Patient ID, Issuer, order numbers, descriptions
CODE_STRING = 16  # CS: Modality, Requested Procedure Priority
AE_TITLE = 16  # AE: Scheduled Station AE Title
UID = 64  # UI
PERSON_NAME_GROUP = 64  # PN: characters per component group

UID_CHARACTERS = re.compile(r"[0-9.]+")
CODE_STRING_CHARACTERS = re.compile(r"[A-Z0-9 _]*")
AE_TITLE_CHARACTERS = re.compile(r"[\x20-\x5b\x5d-\x7e]*")  # printable ASCII without the backslash
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1: no text VR holds them
NAME_DELIMITERS = re.compile(r"[\^=\\]")  # PN component and group separators, value separator
# HL7 DTM: YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]
TIMESTAMP = re.compile(
    r"(?P<year>\d{4})(?:(?P<month>\d{2})(?:(?P<day>\d{2})(?:(?P<hour>\d{2})(?:(?P<minute>\d{2})"
    r"(?:(?P<second>\d{2})(?:\.\d{1,4})?)?)?)?)?)?(?P<zone>[+-](?:[01]\d|2[0-3])[0-5]\d)?"
)

Problem = Callable[[str], str]


def text_problem(maximum: int) -> Problem:
    """LO, SH (and the index columns of their length): at most `maximum` characters, no backslash
    (the DICOM value separator) and no control character."""

    def problem(value: str) -> str:
        if len(value) > maximum:
            return f"plus de {maximum} caractères / longer than {maximum} characters"
        return characters_problem(value)

    return problem


def characters_problem(value: str) -> str:
    if "\\" in value:
        return "contient une barre oblique inverse / holds a backslash"
    if CONTROL_CHARACTERS.search(value):
        return "contient un caractère de contrôle / holds a control character"
    return ""


def uid_problem(value: str) -> str:
    """UI (PS3.5 9.1): digits and dots, at most 64, components without leading zeros, OID root 0-2."""
    if len(value) > UID:
        return f"UID de plus de {UID} caractères / UID longer than {UID} characters"
    if not UID_CHARACTERS.fullmatch(value):
        return "UID avec autre chose que des chiffres et des points / UID with other than digits and dots"
    components = value.split(".")
    if len(components) < 2 or "" in components:
        return "UID avec une composante vide / UID with an empty component"
    if any(len(component) > 1 and component.startswith("0") for component in components):
        return "composante d'UID commençant par 0 / UID component with a leading zero"
    if components[0] not in ("0", "1", "2"):
        return "UID hors des racines 0, 1, 2 / UID outside the roots 0, 1, 2"
    return ""


def code_string_problem(value: str) -> str:
    """CS: at most 16 characters among A-Z, 0-9, space and underscore."""
    if len(value) > CODE_STRING:
        return f"code de plus de {CODE_STRING} caractères / code longer than {CODE_STRING} characters"
    if not CODE_STRING_CHARACTERS.fullmatch(value):
        return "code hors de A-Z, 0-9, espace, _ / code outside A-Z, 0-9, space, _"
    return ""


def ae_title_problem(value: str) -> str:
    """AE: at most 16 printable ASCII characters, no backslash, not only spaces."""
    if len(value) > AE_TITLE:
        return f"titre AE de plus de {AE_TITLE} caractères / AE title longer than {AE_TITLE} characters"
    if not AE_TITLE_CHARACTERS.fullmatch(value) or (value and not value.strip()):
        return "titre AE invalide (ASCII imprimable, sans \\) / invalid AE title (printable ASCII, no \\)"
    return ""


def person_name_problem(components: Sequence[str]) -> str:
    """PN: the components of one group (family, given, …) hold no `^`, `=`, backslash or control
    character, and the group is at most 64 characters with its `^`."""
    if any(NAME_DELIMITERS.search(component) or CONTROL_CHARACTERS.search(component) for component in components):
        return "nom avec ^, =, \\ ou un caractère de contrôle / name with ^, =, \\ or a control character"
    if len("^".join(components).rstrip("^")) > PERSON_NAME_GROUP:
        return (
            f"nom de plus de {PERSON_NAME_GROUP} caractères avec ses ^ / "
            f"name longer than {PERSON_NAME_GROUP} characters with its ^"
        )
    return ""


def timestamp_problem(value: str) -> str:
    """An HL7 DTM (TS) that becomes a DICOM DA (and TM): a real date, at least to the day."""
    found = TIMESTAMP.fullmatch(value)
    if found is None:
        return "pas une date AAAAMMJJ[HHMM[SS]] / not a date YYYYMMDD[HHMM[SS]]"
    if found["day"] is None:
        return "date sans le jour (AAAAMMJJ) / date without its day (YYYYMMDD)"
    year, month, day, hour, minute, second = (
        int(found[name] or 0) for name in ("year", "month", "day", "hour", "minute", "second")
    )
    try:
        datetime(year, month, day, hour, minute, second)
    except ValueError:
        return "date ou heure qui n'existe pas / a date or time that does not exist"
    return ""
