"""Patient's Name in each modality's name format (W2): family name from the birth or the used name,
components sent, case; a civility never in the suffix."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.config import ConfigError
from appliance.config.loader import WorklistProfile, config_from_document
from appliance.worklist.name_format import patient_name
from appliance.worklist.profiles import shortened_name

# A patient known from the RIS: birth name DARK, used name MARTIN (PID-5 L and D repetitions).
FROM_RIS = {
    "patient_name": "DARK^Jeanne",
    "birth_name": "DARK",
    "first_given_name": "Jeanne",
    "used_name": "MARTIN",
    "used_given_name": "Jeannette",
}
# A patient created from images: no identity row (the outer join gives NULLs).
FROM_IMAGES = {
    "patient_name": "ŒUVRARD^Chloé^Marie^Mme",
    "birth_name": None,
    "first_given_name": None,
    "used_name": None,
    "used_given_name": None,
}


def profile(**keys: Any) -> WorklistProfile:
    return config_from_document({"worklist": {"default_profile": keys}}, "test").worklist.default_profile


def test_the_default_sends_the_birth_name_as_recorded() -> None:
    assert patient_name(FROM_RIS, profile()) == "DARK^Jeanne"
    assert patient_name(FROM_IMAGES, profile()) == "ŒUVRARD^Chloé^Marie^Mme"


def test_used_name_with_its_given_name() -> None:
    assert patient_name(FROM_RIS, profile(patient_family_name="used")) == "MARTIN^Jeannette"
    only_birth = {**FROM_RIS, "used_name": "", "used_given_name": ""}
    assert patient_name(only_birth, profile(patient_family_name="used")) == "DARK^Jeanne"  # falls back
    only_used = {**FROM_RIS, "birth_name": "", "first_given_name": ""}
    assert patient_name(only_used, profile()) == "MARTIN^Jeannette"


def test_patient_from_images_keeps_its_recorded_name_whatever_the_family_name_choice() -> None:
    assert patient_name(FROM_IMAGES, profile(patient_family_name="used")) == "ŒUVRARD^Chloé^Marie^Mme"
    no_name = {**FROM_RIS, "birth_name": "", "first_given_name": "", "used_name": "", "used_given_name": ""}
    assert patient_name(no_name, profile()) == "DARK^Jeanne"  # an identity without names: the recorded one


def test_components_and_case() -> None:
    assert patient_name(FROM_IMAGES, profile(patient_name_components=["family", "given"])) == "ŒUVRARD^Chloé"
    assert patient_name(FROM_IMAGES, profile(patient_name_components=["family", "prefix"])) == "ŒUVRARD^^^Mme"
    assert patient_name(FROM_IMAGES, profile(patient_name_case="upper")) == "ŒUVRARD^CHLOÉ^MARIE^MME"


@pytest.mark.parametrize(
    ("recorded", "components", "expected"),
    [
        ("VANILLA^Laura^^^Mme", ["family", "given", "middle", "prefix", "suffix"], "VANILLA^Laura^^Mme"),
        ("VANILLA^Laura^^^Mme", ["family", "given", "suffix"], "VANILLA^Laura"),
        ("DUPONT^Jean^^Dr^M.", ["family", "given", "middle", "prefix", "suffix"], "DUPONT^Jean^^Dr"),
        ("DUPONT^Jean^^^Jr", ["family", "given", "middle", "prefix", "suffix"], "DUPONT^Jean^^^Jr"),
    ],
)
def test_a_civility_is_never_sent_as_suffix(recorded: str, components: list[str], expected: str) -> None:
    item = {**FROM_IMAGES, "patient_name": recorded}
    assert patient_name(item, profile(patient_name_components=components)) == expected


def test_ideographic_and_phonetic_groups_follow_the_components() -> None:
    item = {**FROM_IMAGES, "patient_name": "Yamada^Tarou^^^Mr=山田^太郎=やまだ^たろう"}
    assert patient_name(item, profile(patient_name_components=["family"])) == "Yamada=山田=やまだ"


def test_the_length_limit_cuts_the_formatted_name_at_component_boundaries() -> None:
    formatted = patient_name(FROM_IMAGES, profile(patient_name_case="upper"))
    assert shortened_name(formatted, 16) == "ŒUVRARD^CHLOÉ"


def test_the_family_name_is_always_sent() -> None:
    with pytest.raises(ConfigError, match="patient_name_components"):
        profile(patient_name_components=["given"])
