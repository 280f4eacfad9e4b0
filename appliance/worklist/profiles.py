"""What each modality receives from the worklist (W2): the answer to one Modality Worklist query,
shaped by the modality's profile (which attributes, name format, lengths, character set, date window,
station filter). `appliance worklist preview` prints these datasets (`answers`); the DICOM edge
writes the same answers straight from the index rows (`answer_template`, `answer_elements`: plain
tuples, no pydicom Dataset per item, as building one costs about 0.3 ms), and a test keeps both ways
byte-identical, so what the preview shows is exactly what the modality gets.
"""

from __future__ import annotations

from datetime import date
from typing import Any, NamedTuple

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from sqlalchemy import Engine

from appliance.archive.datasets import dataset_from
from appliance.config.loader import WorklistConfig, WorklistProfile
from appliance.patients.names import transliterate
from appliance.worklist.name_format import patient_name
from appliance.worklist.search import WorklistQuery, find_items

# Return keys of type 1 or 2 (PS3.4 Table K.6-1): always answered when asked, whatever the profile.
REQUIRED_KEYS = {
    "ScheduledProcedureStepSequence", "ScheduledStationAETitle", "ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepStartTime", "Modality", "ScheduledPerformingPhysicianName",
    "ScheduledProcedureStepDescription", "ScheduledProcedureStepID", "ScheduledProtocolCodeSequence",
    "RequestedProcedureID", "RequestedProcedureDescription", "RequestedProcedureCodeSequence",
    "StudyInstanceUID", "ReferencedStudySequence", "AccessionNumber", "ReferringPhysicianName",
    "RequestingPhysician", "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
    "ScheduledProcedureStepStatus",
}  # fmt: skip


PATIENT_ID = Tag("PatientID")
PATIENT_NAME = Tag("PatientName")
SPECIFIC_CHARACTER_SET = Tag("SpecificCharacterSet")
TRANSLITERATED_VRS = ("PN", "LO", "SH", "ST", "LT", "UT")

# The step's status (worklist domain) as Scheduled Procedure Step Status (0040,0020) says it.
STEP_STATUS = {"SCHEDULED": "SCHEDULED", "IN PROGRESS": "STARTED"}


def query_of(identifier: Dataset) -> WorklistQuery:
    """The matching keys of an MWL identifier (the first Scheduled Procedure Step item holds some)."""
    step = Dataset()
    sequence = identifier.get("ScheduledProcedureStepSequence")
    if sequence:
        step = sequence[0]
    return WorklistQuery(
        station_ae_title=text(step, "ScheduledStationAETitle"),
        modality=text(step, "Modality"),
        start_date=text(step, "ScheduledProcedureStepStartDate"),
        start_time=text(step, "ScheduledProcedureStepStartTime"),
        station_name=text(step, "ScheduledStationName"),
        performing_physician_name=text(step, "ScheduledPerformingPhysicianName"),
        step_id=text(step, "ScheduledProcedureStepID"),
        patient_name=text(identifier, "PatientName"),
        patient_id=text(identifier, "PatientID"),
        accession_number=text(identifier, "AccessionNumber"),
        requested_procedure_id=text(identifier, "RequestedProcedureID"),
        study_instance_uid=text(identifier, "StudyInstanceUID"),
    )


def text(dataset: Dataset, keyword: str) -> str:
    value = dataset.get(keyword)
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(part) for part in value)
    return str(value)


def full_item(item: dict[str, Any], profile: WorklistProfile) -> dict[str, Any]:
    """Every attribute the archive knows about one scheduled step: keyword to value, sequences as
    lists of such dictionaries (Datasets are built only for what the modality asked); Patient's
    Name in the profile's name format."""
    code = code_item(item)
    step = {
        "ScheduledStationAETitle": item["scheduled_station_ae_title"],
        "ScheduledStationName": item["scheduled_station_name"],
        "ScheduledProcedureStepStartDate": item["scheduled_start_date"],
        "ScheduledProcedureStepStartTime": item["scheduled_start_time"],
        "Modality": item["modality"],
        "ScheduledPerformingPhysicianName": item["scheduled_performing_physician_name"],
        "ScheduledProcedureStepDescription": item["scheduled_procedure_step_description"],
        "ScheduledProcedureStepID": item["scheduled_procedure_step_id"],
        "ScheduledProcedureStepStatus": STEP_STATUS.get(item["status"], "SCHEDULED"),
        "ScheduledProtocolCodeSequence": code,
    }
    return {
        "ScheduledProcedureStepSequence": [step],
        "RequestedProcedureID": item["requested_procedure_id"],
        "RequestedProcedureDescription": item["requested_procedure_description"],
        "RequestedProcedureCodeSequence": code,
        "RequestedProcedurePriority": item["priority"],
        "StudyInstanceUID": item["study_instance_uid"],
        "ReferencedStudySequence": [],
        "AccessionNumber": item["accession_number"],
        "ReferringPhysicianName": item["referring_physician_name"],
        "RequestingPhysician": item["requesting_physician_name"],
        "ReasonForTheRequestedProcedure": item["reason"],
        "PatientName": patient_name(item, profile),
        "PatientID": item["patient_id"],
        "IssuerOfPatientID": item["issuer_of_patient_id"],
        "PatientBirthDate": item["patient_birth_date"],
        "PatientSex": item["patient_sex"],
        "OtherPatientIDsSequence": item["other_patient_ids"],
    }


def code_item(item: dict[str, Any]) -> list[dict[str, Any]]:
    if not item["procedure_code_value"]:
        return []
    return [
        {
            "CodeValue": item["procedure_code_value"],
            "CodingSchemeDesignator": item["procedure_code_scheme"] or "L",
            "CodeMeaning": item["procedure_code_meaning"],
        }
    ]


def mirrored(request: Dataset, known: dict[str, Any], allowed: set[str] | None) -> Dataset:
    """The answer has exactly the requested attributes (PS3.4 C.2.2.1), valued where known; an
    empty sequence in the request asks for whole items (C.2.2.2.6)."""
    response = Dataset()
    for element in request:
        keyword = element.keyword
        if keyword == "SpecificCharacterSet" or (allowed is not None and keyword not in allowed):
            continue
        value = known.get(keyword)
        if element.VR != "SQ":
            response.add_new(element.tag, element.VR, value if value is not None else None)
        elif not value:
            response.add_new(element.tag, "SQ", Sequence())
        elif element.value:
            response.add_new(element.tag, "SQ", Sequence([mirrored(element.value[0], item, allowed) for item in value]))
        else:
            response.add_new(element.tag, "SQ", Sequence([dataset_from(item) for item in value]))
    return response


def adapted(response: Dataset, profile: WorklistProfile) -> Dataset:
    """Apply the modality's profile: lengths of ID and name (after its name format), and the
    character set."""
    if response.get("PatientID"):
        response.PatientID = str(response.PatientID)[: profile.patient_id_max_length]
    if response.get("PatientName"):
        response.PatientName = shortened_name(str(response.PatientName), profile.patient_name_max_length)
    if profile.character_set != "ISO_IR 192":
        transliterated(response, keep_latin1=profile.character_set == "ISO_IR 100")
    response.SpecificCharacterSet = "" if profile.character_set == "ASCII" else profile.character_set
    return response


def shortened_name(name: str, limit: int) -> str:
    """A PN value cut to `limit` characters, dropping whole trailing components first."""
    components = name.split("^")
    while len("^".join(components)) > limit and len(components) > 1:
        components.pop()
    return "^".join(components)[:limit]


def transliterated(dataset: Dataset, keep_latin1: bool) -> None:
    for element in dataset:
        if element.VR == "SQ":
            for item in element.value:
                transliterated(item, keep_latin1)
        elif element.VR in TRANSLITERATED_VRS and element.value:
            element.value = transliterate(str(element.value), keep_latin1)


def answers(
    engine: Engine, config: WorklistConfig, request: Dataset, calling_ae_title: str, today: date
) -> list[Dataset]:
    """What the modality calling as `calling_ae_title` receives for `request` (also the preview)."""
    profile = config.profile_for(calling_ae_title)
    items = find_items(engine, query_of(request), profile, calling_ae_title, today)
    return [answer(request, item, profile) for item in items]


def answer(request: Dataset, item: dict[str, Any], profile: WorklistProfile) -> Dataset:
    """The one answer a modality with `profile` receives for a found step `item` (`find_items`)."""
    allowed = (REQUIRED_KEYS | set(profile.return_keys)) if profile.return_keys else None
    return adapted(mirrored(request, full_item(item, profile), allowed), profile)


class Field(NamedTuple):
    """One attribute the modality asked for: for a sequence, the attributes asked of its items
    (None: whole items, PS3.4 C.2.2.2.6)."""

    tag: BaseTag
    VR: str
    keyword: str
    items: tuple[Field, ...] | None


class AnswerElement(NamedTuple):
    """One attribute of an answer, shaped as pydicom's data elements are (the edge's writer takes
    both): a text value or None, or for a sequence a list of items, each a list of these."""

    tag: BaseTag
    VR: str
    value: Any


def answer_template(request: Dataset, profile: WorklistProfile) -> tuple[Field, ...]:
    """What every answer to `request` holds, in tag order, for a modality with `profile`: the
    requested attributes the profile lets through (as `mirrored` does). Hashable: a cache key."""
    allowed = (REQUIRED_KEYS | set(profile.return_keys)) if profile.return_keys else None
    return fields_of(request, allowed)


def fields_of(request: Dataset, allowed: set[str] | None) -> tuple[Field, ...]:
    fields = []
    for element in request:
        keyword = element.keyword
        if keyword == "SpecificCharacterSet" or (allowed is not None and keyword not in allowed):
            continue
        items = fields_of(element.value[0], allowed) if element.VR == "SQ" and element.value else None
        fields.append(Field(element.tag, element.VR, keyword, items))
    return tuple(fields)


def answer_elements(template: tuple[Field, ...], item: dict[str, Any], profile: WorklistProfile) -> list[AnswerElement]:
    """The answer `answer()` builds for the found step `item`, as plain elements in tag order:
    the same values, lengths, name format and character set, without a pydicom Dataset."""
    elements = mirrored_elements(template, full_item(item, profile))
    return adapted_elements(elements, profile)


def mirrored_elements(template: tuple[Field, ...], known: dict[str, Any]) -> list[AnswerElement]:
    elements = []
    for field in template:
        value = known.get(field.keyword)
        if field.VR != "SQ":
            elements.append(AnswerElement(field.tag, field.VR, value))
        elif not value:
            elements.append(AnswerElement(field.tag, "SQ", []))
        elif field.items is not None:
            elements.append(AnswerElement(field.tag, "SQ", [mirrored_elements(field.items, one) for one in value]))
        else:
            elements.append(AnswerElement(field.tag, "SQ", [whole_item(one) for one in value]))
    return elements


def whole_item(values: dict[str, Any]) -> list[AnswerElement]:
    """A sequence item holding everything known (as `dataset_from` builds it), in tag order."""
    elements = []
    for keyword, value in values.items():
        tag = Tag(keyword)
        if isinstance(value, list):
            elements.append(AnswerElement(tag, "SQ", [whole_item(one) for one in value]))
        else:
            elements.append(AnswerElement(tag, dictionary_VR(tag), value))
    return sorted(elements, key=lambda element: element.tag)


def adapted_elements(elements: list[AnswerElement], profile: WorklistProfile) -> list[AnswerElement]:
    """`adapted` on plain elements: lengths of ID and name, transliteration, the character set."""
    shortened = [shortened_element(element, profile) for element in elements]
    if profile.character_set != "ISO_IR 192":
        shortened = transliterated_elements(shortened, keep_latin1=profile.character_set == "ISO_IR 100")
    character_set = "" if profile.character_set == "ASCII" else profile.character_set
    shortened.append(AnswerElement(SPECIFIC_CHARACTER_SET, "CS", character_set))
    return sorted(shortened, key=lambda element: element.tag)


def shortened_element(element: AnswerElement, profile: WorklistProfile) -> AnswerElement:
    if element.tag == PATIENT_ID and element.value:
        return element._replace(value=str(element.value)[: profile.patient_id_max_length])
    if element.tag == PATIENT_NAME and element.value:
        return element._replace(value=shortened_name(str(element.value), profile.patient_name_max_length))
    return element


def transliterated_elements(elements: list[AnswerElement], keep_latin1: bool) -> list[AnswerElement]:
    result = []
    for element in elements:
        if element.VR == "SQ":
            element = element._replace(value=[transliterated_elements(one, keep_latin1) for one in element.value])
        elif element.VR in TRANSLITERATED_VRS and element.value:
            element = element._replace(value=transliterate(str(element.value), keep_latin1))
        result.append(element)
    return result


def typical_query(modality: str = "") -> Dataset:
    """A worklist query as most modalities send it: every usual key, no date, no station."""
    step = Dataset()
    for keyword in ("ScheduledStationAETitle", "ScheduledProcedureStepStartDate", "ScheduledProcedureStepStartTime",
                    "ScheduledPerformingPhysicianName", "ScheduledProcedureStepDescription",
                    "ScheduledProcedureStepID", "ScheduledStationName"):  # fmt: skip
        setattr(step, keyword, "")
    step.Modality = modality
    step.ScheduledProtocolCodeSequence = Sequence()
    query = Dataset()
    query.SpecificCharacterSet = "ISO_IR 192"
    query.ScheduledProcedureStepSequence = Sequence([step])
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber",
                    "RequestedProcedureID", "RequestedProcedureDescription", "StudyInstanceUID",
                    "ReferringPhysicianName", "RequestingPhysician", "IssuerOfPatientID"):  # fmt: skip
        setattr(query, keyword, "")
    query.RequestedProcedureCodeSequence = Sequence()
    query.OtherPatientIDsSequence = Sequence()
    return query
