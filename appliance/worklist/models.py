"""Known modality models (W2): named worklist profiles the setup pages offer, so that a practice picks
"GE Voluson ultrasound" rather than a character set and lengths, and a preview of what such a
modality receives for a sample order, made by the same profile code as the real answers
(`profiles.answer`), so what the page shows is what the modality gets.

A model is a set of `worklist_profile` keys (config/schema.yaml); choosing one for a modality writes
those keys with its AE title in `worklist.profiles`. A profile written by hand that matches no model
is "set by hand" and kept as it is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from pydicom.dataset import Dataset

from appliance.config.loader import WorklistProfile, with_defaults, worklist_profile
from appliance.worklist.profiles import answer, typical_query


@dataclass(frozen=True)
class KnownModel:
    key: str  # kept in forms and URLs
    name: str  # in English; the console shows its own translation
    values: tuple[tuple[str, Any], ...]  # `worklist_profile` keys that differ from the defaults

    def profile(self, ae_title: str) -> WorklistProfile:
        """This model's profile for the modality calling as `ae_title`."""
        return profile_from({"ae_title": ae_title, **dict(self.values)})

    def document(self, ae_title: str) -> dict[str, Any]:
        """The entry of `worklist.profiles` choosing this model for `ae_title`."""
        values = {key: list(value) if isinstance(value, tuple) else value for key, value in self.values}
        return {"ae_title": ae_title, **values}


GENERIC = "generic"
MODELS = (
    KnownModel(GENERIC, "Generic DICOM (UTF-8)", ()),
    KnownModel(
        "siemens-ct",
        "Siemens CT scanner (UTF-8)",
        (("character_set", "ISO_IR 192"), ("patient_name_components", ("family", "given", "middle"))),
    ),
    KnownModel(
        "ge-voluson",
        "GE Voluson ultrasound (Latin-1, names shortened to 64)",
        (("character_set", "ISO_IR 100"), ("patient_name_max_length", 64), ("patient_id_max_length", 16)),
    ),
    KnownModel(
        "old-mammography",
        "Older mammography unit (ASCII, 16-character names)",
        (
            ("character_set", "ASCII"),
            ("patient_name_max_length", 16),
            ("patient_name_case", "upper"),
            ("patient_name_components", ("family", "given")),
        ),
    ),
)

# A sample order, as the RIS would send it: a name with a ligature and accents, a long IPP.
SAMPLE_ORDER: dict[str, Any] = {
    "patient_id": "IPP-2026-000123456789",
    "issuer_of_patient_id": "RIS-CAB",
    "patient_name": "CŒUR-DE-LION^Éléonore^Marie-Hélène^Mme",
    "patient_birth_date": "19580214",
    "patient_sex": "F",
    "birth_name": "CŒUR-DE-LION",
    "first_given_name": "Éléonore",
    "used_name": "",
    "used_given_name": "",
    "other_patient_ids": [],
    "scheduled_station_ae_title": "",
    "scheduled_station_name": "SALLE 1",
    "scheduled_start_time": "093000",
    "modality": "US",
    "scheduled_performing_physician_name": "",
    "scheduled_procedure_step_description": "Échographie abdominale",
    "scheduled_procedure_step_id": "SPS-0001",
    "status": "SCHEDULED",
    "procedure_code_value": "",
    "procedure_code_scheme": "",
    "procedure_code_meaning": "",
    "requested_procedure_id": "RP-0001",
    "requested_procedure_description": "Échographie abdominale complète",
    "priority": "ROUTINE",
    "study_instance_uid": "1.2.250.1.999.2.2026.1",
    "accession_number": "A2026-0001",
    "referring_physician_name": "LEFÈVRE^Hélène^^Dr",
    "requesting_physician_name": "LEFÈVRE^Hélène^^Dr",
    "reason": "",
}
# What the preview shows of an answer, in this order.
PREVIEW_KEYWORDS = (
    "SpecificCharacterSet", "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber",
    "RequestedProcedureDescription", "ReferringPhysicianName",
)  # fmt: skip


def profile_from(values: dict[str, Any]) -> WorklistProfile:
    """A worklist profile from `worklist_profile` keys, the schema's defaults filled in."""
    return worklist_profile(with_defaults({"$ref": "#/$defs/worklist_profile"}, dict(values)))


def document_of(profile: WorklistProfile) -> dict[str, Any]:
    """The entry of `worklist.profiles` for `profile`: its AE title and the keys that differ from the
    defaults."""
    values, defaults = asdict(profile), asdict(profile_from({"ae_title": profile.ae_title}))
    kept = {key: value for key, value in values.items() if key == "ae_title" or value != defaults[key]}
    return {key: list(value) if isinstance(value, tuple) else value for key, value in kept.items()}


def model(key: str) -> KnownModel | None:
    return next((known for known in MODELS if known.key == key), None)


def model_of(profile: WorklistProfile) -> KnownModel | None:
    """The known model whose values `profile` has exactly (None: a profile set by hand)."""
    return next((known for known in MODELS if known.profile(profile.ae_title) == profile), None)


def sample_answer(profile: WorklistProfile, today: date) -> Dataset:
    """What a modality with `profile` receives for the sample order scheduled `today`."""
    item = {**SAMPLE_ORDER, "scheduled_start_date": f"{today:%Y%m%d}", "scheduled_station_ae_title": profile.ae_title}
    return answer(typical_query(), item, profile)


def preview(profile: WorklistProfile, today: date) -> list[tuple[str, str]]:
    """(keyword, value as the modality shows it) of the sample answer, for the setup pages."""
    response = sample_answer(profile, today)
    return [(keyword, str(response.get(keyword, "") or "")) for keyword in PREVIEW_KEYWORDS]
