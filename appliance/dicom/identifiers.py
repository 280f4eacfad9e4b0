"""C-FIND/C-GET/C-MOVE identifiers: from a request Dataset to a domain Query, and from index rows
back to a response Dataset in a character set that loses nothing."""

from __future__ import annotations

from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from appliance.archive.datasets import value_for
from appliance.archive.search import Query

UTF8 = "ISO_IR 192"
LATIN1 = "ISO_IR 100"


class IdentifierError(Exception):
    """The identifier cannot be read; the message names the attribute."""


def query_of(identifier: Dataset) -> Query:
    """The domain query of a request identifier (values decoded with its character set)."""
    try:
        level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
        keys = {
            element.keyword: element_text(element)
            for element in identifier
            if element.keyword and element.keyword not in ("QueryRetrieveLevel", "SpecificCharacterSet")
        }
    except Exception as error:  # a hostile identifier can break pydicom in many ways
        raise IdentifierError(f"cannot read the identifier: {type(error).__name__}") from error
    if not level:
        raise IdentifierError("QueryRetrieveLevel is missing")
    return Query(level=level, keys=keys)


def element_text(element: DataElement) -> str:
    if element.VR == "SQ":
        return ""
    value = element.value
    if value is None:
        return ""
    if isinstance(value, (MultiValue, list, tuple)):
        return "\\".join(str(part) for part in value)
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return str(value)


def response_identifier(row: dict[str, Any], request: Dataset, level: str, retrieve_ae_title: str) -> Dataset:
    """The answer for one match: every requested key, filled from the index where it knows it."""
    response = Dataset()
    for element in request:
        if element.keyword in ("SpecificCharacterSet", "QueryRetrieveLevel"):
            continue
        if element.keyword in row:
            setattr(response, element.keyword, value_for(row[element.keyword]))
        elif element.VR == "SQ":
            response.add_new(element.tag, "SQ", Sequence())
        else:
            response.add_new(element.tag, element.VR, None)
    for keyword in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        if keyword in row and keyword not in response:
            setattr(response, keyword, value_for(row[keyword]))
    response.QueryRetrieveLevel = level
    response.RetrieveAETitle = retrieve_ae_title
    if "InstanceAvailability" in request:
        response.InstanceAvailability = "ONLINE"
    response.SpecificCharacterSet = character_set_for(response, request)
    return response


def character_set_for(response: Dataset, request: Dataset) -> str:
    """UTF-8 when the peer asked in UTF-8 or a value needs it; Latin-1 when enough; else ASCII.

    A well-known archive answers in Latin-1 and silently drops `Œ` (ŒUVRARD becomes UVRARD): we
    never do; UTF-8 is used whenever Latin-1 cannot carry a value.
    """
    asked = request.get("SpecificCharacterSet", "")
    asked_values = list(asked) if isinstance(asked, (MultiValue, list)) else [asked]
    texts = [str(element.value) for element in response if isinstance(element.value, str) or element.VR == "PN"]
    if UTF8 in asked_values:
        return UTF8
    if all(text.isascii() for text in texts):
        return ""
    if all(encodable(text, "latin-1") for text in texts):
        return LATIN1
    return UTF8


def encodable(text: str, codec: str) -> bool:
    try:
        text.encode(codec)
    except UnicodeEncodeError:
        return False
    return True
