"""Worklist answers written once, straight from the index rows, and kept (issue 14).

Building a pydicom Dataset per answer and writing it cost about 0.35 ms per scheduled step, most of
the worklist daemon's time on a query. Here each found step becomes plain elements
(`profiles.answer_elements`) written in the negotiated syntax by `encoding.written`, and the written
bytes are kept, keyed by everything they are made of: the modality's profile, the attributes its
query asked for, the syntax, and the step's row as the index holds it now (with its patient, the
identity's names and the INS). The index is still searched on every query (about 1 ms for 1,000
steps): a new, changed, started or cancelled order, a patient's new name or a merge changes the rows
found, so a kept answer is never stale and no change marker has to follow every writer of those
tables. What this writer cannot write exactly is built as a Dataset as before (`profiles.answer`).
"""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy import Engine

from appliance.config.loader import WorklistConfig, WorklistProfile
from appliance.dicom.encoding import CODECS, PYDICOM_ENCODE, Unsupported, written
from appliance.worklist.profiles import (
    PATIENT_ID,
    PATIENT_NAME,
    SPECIFIC_CHARACTER_SET,
    Field,
    answer,
    answer_elements,
    answer_template,
    query_of,
)
from appliance.worklist.search import find_items

ISSUER_OF_PATIENT_ID = 0x00100021
MAXIMUM_KEPT = 20_000  # answers (about 1 KB each): a busy practice's two weeks of steps, a few profiles


@dataclass(frozen=True)
class WrittenAnswer:
    """One answer as written for the wire, and who it is about (for the audit trail)."""

    encoded: bytes
    patient_id: str
    issuer_of_patient_id: str
    patient_name: str


class AnswerCache:
    """Written answers by what they are made of (see the module's docstring); shared by the
    associations' threads, the oldest dropped beyond `maximum` entries."""

    def __init__(self, maximum: int = MAXIMUM_KEPT) -> None:
        self.maximum = maximum
        self.entries: OrderedDict[tuple[Any, ...], WrittenAnswer] = OrderedDict()
        self.lock = threading.Lock()

    def answers(
        self, engine: Engine, config: WorklistConfig, request: Dataset, calling_ae_title: str, today: date,
        implicit: bool,
    ) -> list[WrittenAnswer]:  # fmt: skip
        """What the modality calling as `calling_ae_title` receives for `request`, written in
        implicit (else explicit) VR little endian; raises SQLAlchemyError when the index fails."""
        profile = config.profile_for(calling_ae_title)
        template = answer_template(request, profile)
        items = find_items(engine, query_of(request), profile, calling_ae_title, today)
        return [self.answer(request, template, item, profile, implicit) for item in items]

    def answer(
        self, request: Dataset, template: tuple[Field, ...], item: dict[str, Any], profile: WorklistProfile,
        implicit: bool,
    ) -> WrittenAnswer:  # fmt: skip
        key = (profile, template, implicit, fingerprint(item))
        with self.lock:
            found = self.entries.get(key)
        if found is None:
            found = written_answer(request, template, item, profile, implicit)
            with self.lock:
                self.entries[key] = found
                while len(self.entries) > self.maximum:
                    self.entries.popitem(last=False)
        return found


def fingerprint(item: dict[str, Any]) -> tuple[Any, ...]:
    """A found step's row (and its INS items) as a hashable value."""
    return tuple((key, repr(value) if isinstance(value, list) else value) for key, value in item.items())


def written_answer(
    request: Dataset, template: tuple[Field, ...], item: dict[str, Any], profile: WorklistProfile, implicit: bool
) -> WrittenAnswer:
    """One answer written from plain elements; through a Dataset and pydicom's writer when the
    values need what `encoding.written` does not do (another character set, an over-long value)."""
    elements = answer_elements(template, item, profile)
    values = {int(element.tag): element.value for element in elements}
    try:
        encoded = written(elements, implicit, CODECS[values.get(SPECIFIC_CHARACTER_SET) or ""])
    except (Unsupported, KeyError, UnicodeEncodeError, struct.error, TypeError):
        encoded = PYDICOM_ENCODE(answer(request, item, profile), implicit, True, False) or b""
    return WrittenAnswer(
        encoded, text(values.get(PATIENT_ID)), text(values.get(ISSUER_OF_PATIENT_ID)), text(values.get(PATIENT_NAME))
    )


def text(value: Any) -> str:
    return "" if value is None else str(value)
