"""QIDO-RS (PS3.18 10.6): query parameters to an `archive.search.Query`, matches to DICOM JSON.

Parameters name attributes by keyword (`PatientName`, what dicomweb-client sends) or by tag
(`00100010`, what OHIF and Weasis send); `includefield` is repeated, comma-separated or `all`;
`limit` and `offset` page through the matches (dicomweb-client's `get_remaining` asks until a page
comes back empty); `fuzzymatching` is accepted and changes nothing: names already match whatever
the case, the accents and the spelling of ligatures (`archive.search`). Matching itself (wildcards,
date ranges, UID lists) is the archive's, the same as C-FIND's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from appliance.archive.search import KEYS, LEVELS, PATIENT_COUNTS, Query

DEFAULT_LIMIT = 1000
MAXIMUM_LIMIT = 5000
RETRIEVE_URL = "RetrieveURL"
INCLUDE = ("includefield", "includefields")
CONTROL = {"limit", "offset", "fuzzymatching", *INCLUDE}

# PS3.18 Table 10.6.3-3..5: what every match carries, per level, whatever the query asks.
STUDY_RETURNED = (
    "StudyDate", "StudyTime", "AccessionNumber", "ModalitiesInStudy", "ReferringPhysicianName",
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
    "StudyInstanceUID", "StudyID", "StudyDescription", "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)  # fmt: skip
SERIES_RETURNED = (
    "Modality", "SeriesDescription", "SeriesNumber", "SeriesInstanceUID", "SeriesDate", "SeriesTime",
    "BodyPartExamined", "NumberOfSeriesRelatedInstances",
)  # fmt: skip
INSTANCE_RETURNED = ("SOPClassUID", "SOPInstanceUID", "InstanceNumber", "Rows", "Columns", "NumberOfFrames")
RETURNED = {"STUDY": STUDY_RETURNED, "SERIES": SERIES_RETURNED, "IMAGE": INSTANCE_RETURNED}


class BadQuery(Exception):
    """A parameter QIDO-RS cannot take (a limit that is no number, say); the message says which."""


@dataclass(frozen=True)
class Search:
    """One QIDO-RS request, decoded: the archive query, the page, and what was ignored."""

    query: Query
    limit: int
    offset: int
    unsupported: tuple[str, ...] = ()
    asked_limit: bool = False


def keyword_of(name: str) -> str | None:
    """A keyword from a keyword or an 8-digit hexadecimal tag; None when it is neither."""
    if len(name) == 8 and all(character in "0123456789abcdefABCDEF" for character in name):
        return keyword_for_tag(int(name, 16)) or None
    return name if tag_for_keyword(name) is not None else None


def included(values: Iterable[str], level: str) -> tuple[set[str], bool]:
    """The keywords `includefield` asks for, and whether it asked for all of them."""
    wanted: set[str] = set()
    for value in values:
        for name in value.split(","):
            name = name.strip()
            if name.lower() == "all":
                return set(known_at(level)), True
            keyword = keyword_of(name) if name else None
            if keyword is not None:
                wanted.add(keyword)
    return wanted, False


def known_at(level: str) -> list[str]:
    depth = LEVELS.index(level)
    return [keyword for keyword, key in KEYS.items() if LEVELS.index(key.level) <= depth]


def decode(level: str, arguments: Mapping[str, list[str]], path_keys: Mapping[str, str]) -> Search:
    """A QIDO-RS request at `level` (STUDY, SERIES, IMAGE) from its query parameters (each name with
    all its values) and the UIDs of its path.

    Raises BadQuery for a limit or offset that is not a whole number.
    """
    keys: dict[str, str] = {keyword: "" for keyword in returned_at(level)}
    unsupported: list[str] = []
    for name, values in arguments.items():
        if name.lower() in CONTROL:
            continue
        keyword = keyword_of(name)
        if keyword is None or keyword not in KEYS:
            unsupported.append(name)
            continue
        keys[keyword] = values[-1] if values else ""
    fields = [value for name, values in arguments.items() if name.lower() in INCLUDE for value in values]
    for keyword in included(fields, level)[0]:
        if keyword in KEYS or keyword in PATIENT_COUNTS:
            keys.setdefault(keyword, "")
    keys.update(path_keys)
    limit = min(number(arguments, "limit", DEFAULT_LIMIT), MAXIMUM_LIMIT)
    offset = number(arguments, "offset", 0)
    return Search(Query(level, keys), limit, offset, tuple(unsupported), "limit" in arguments)


def returned_at(level: str) -> tuple[str, ...]:
    """The attributes every match at `level` carries: those of its level and of the levels above
    (a series or instance query across studies also says which study and series)."""
    order = ["STUDY", "SERIES", "IMAGE"]
    return tuple(keyword for upper in order[: order.index(level) + 1] for keyword in RETURNED[upper])


def number(arguments: Mapping[str, list[str]], name: str, default: int) -> int:
    values = arguments.get(name) or []
    if not values or not values[-1].strip():
        return default
    try:
        value = int(values[-1])
    except ValueError as error:
        raise BadQuery(f"{name}: {values[-1]!r} is not a whole number") from error
    if value < 0:
        raise BadQuery(f"{name}: {value} is negative")
    return value


def dicom_json(match: Mapping[str, Any], wanted: Iterable[str], retrieve_url: str) -> dict[str, Any]:
    """One match as a DICOM JSON object (PS3.18 F.2): PN as objects, IS/DS/US/UL as numbers."""
    result: dict[str, Any] = {}
    for keyword in wanted:
        if keyword not in match or keyword == "OtherPatientIDsSequence":
            continue
        tag = tag_for_keyword(keyword)
        if tag is None:
            continue
        vr = dictionary_VR(tag)
        result[f"{tag:08X}"] = element(vr, match[keyword])
    result["00081190"] = {"vr": "UR", "Value": [retrieve_url]}
    return dict(sorted(result.items()))


def element(vr: str, value: Any) -> dict[str, Any]:
    """A DICOM JSON element of `vr` for an index value (None or '' = present but empty)."""
    if value is None or value == "":
        return {"vr": vr}
    if vr == "PN":
        return {"vr": vr, "Value": [{"Alphabetic": str(value)}]}
    if vr in ("IS", "US", "UL", "SL", "SS"):
        return {"vr": vr, "Value": [int(value)]}
    if vr in ("DS", "FL", "FD"):
        return {"vr": vr, "Value": [float(value)]}
    text = str(value)
    return {"vr": vr, "Value": text.split("\\") if vr == "CS" else [text]}
