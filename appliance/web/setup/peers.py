"""The modalities step: the known DICOM peers and, for those with the worklist right, the profile of
what they receive, chosen among the known models (`appliance.worklist.models`) with a preview.

Both lists are written whole to the console layer (its lists replace the main file's), so the page
starts from the lists in force and changes one entry."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from flask import request

from appliance.config import Config, Peer
from appliance.config.checks import Key
from appliance.config.loader import WorklistProfile
from appliance.web.forms import choices, lazy, text
from appliance.web.setup.forms import RIGHTS, ModalityForm
from appliance.web.setup.saving import FieldOf
from appliance.worklist.models import MODELS, document_of, model, model_of, preview

DEFAULT = ""  # no profile of its own: the box's default profile
CUSTOM = "custom"  # a profile written by hand, kept as it is
RIGHT_ORDER = [key for key, _label in RIGHTS]
MODEL_NAMES = {
    "generic": lazy("Generic DICOM (UTF-8)"),
    "siemens-ct": lazy("Siemens CT scanner (UTF-8)"),
    "ge-voluson": lazy("GE Voluson ultrasound (Latin-1, names shortened to 64)"),
    "old-mammography": lazy("Older mammography unit (ASCII, 16-character names)"),
    DEFAULT: lazy("The box's default profile"),
    CUSTOM: lazy("Set by hand (kept as it is)"),
}
PEER_FIELDS = ("ae_title", "host", "port", "rights", "description")


@dataclass(frozen=True)
class Row:
    """One modality as the list shows it."""

    peer: Peer
    rights: tuple[str, ...]  # in the order of RIGHTS
    model: str  # the model's name in the page's language ('' without the worklist right)


@dataclass(frozen=True)
class Preview:
    key: str
    name: str
    lines: dict[str, str]  # keyword: value as the modality shows it


def rows(config: Config) -> list[Row]:
    return [
        Row(peer, tuple(right for right in RIGHT_ORDER if peer.may(right)), model_name(config, peer))
        for peer in config.peers
    ]


def model_name(config: Config, peer: Peer) -> str:
    return str(MODEL_NAMES[model_key(own_profile(config, peer.ae_title))]) if peer.may("worklist") else ""


def own_profile(config: Config, ae_title: str) -> WorklistProfile | None:
    return next((profile for profile in config.worklist.profiles if profile.ae_title == ae_title), None)


def model_key(profile: WorklistProfile | None) -> str:
    if profile is None:
        return DEFAULT
    known = model_of(profile)
    return known.key if known else CUSTOM


def form_for(config: Config, original: str) -> ModalityForm:
    """The form of the modality named `original` (a new one when ''), with the model choices."""
    peer = config.peer(original) if original else None
    profile = own_profile(config, original) if original else None
    current: dict[str, Any] = {"port": 104, "rights": ["store"], "model": DEFAULT}
    if peer is not None:
        current = {
            "ae_title": peer.ae_title,
            "host": peer.host,
            "port": peer.port,
            "rights": [right for right in RIGHT_ORDER if peer.may(right)],
            "description": peer.description,
            "model": model_key(profile),
        }
    form = ModalityForm(data=current) if request.method == "GET" else ModalityForm()
    keys = [DEFAULT, *(known.key for known in MODELS), *([CUSTOM] if model_key(profile) == CUSTOM else [])]
    form.model.choices = choices([(key, MODEL_NAMES[key]) for key in keys])
    return form


def peer_document(peer: Peer) -> dict[str, Any]:
    document: dict[str, Any] = {"ae_title": peer.ae_title, "host": peer.host, "port": peer.port}
    document["rights"] = [right for right in RIGHT_ORDER if peer.may(right)]
    return {**document, "description": peer.description} if peer.description else document


def changes(config: Config, original: str, form: ModalityForm) -> tuple[dict[str, Any], int]:
    """The new `peers` and `worklist.profiles` lists, and the position of the edited peer."""
    ae_title = text(form.ae_title)
    entry: dict[str, Any] = {"ae_title": ae_title, "host": text(form.host), "port": form.port.data}
    entry["rights"] = [right for right in RIGHT_ORDER if right in (form.rights.data or [])]
    if text(form.description):
        entry["description"] = text(form.description)
    peers = [peer_document(peer) for peer in config.peers]
    position = next((index for index, peer in enumerate(config.peers) if peer.ae_title == original), len(peers))
    peers[position : position + 1] = [entry]
    profiles = [profile for profile in config.worklist.profiles if profile.ae_title not in (original, ae_title)]
    chosen = chosen_profile(own_profile(config, original), str(form.model.data or ""), ae_title)
    if chosen is not None and "worklist" in entry["rights"]:
        profiles.append(chosen)
    return {"peers": peers, "worklist": {"profiles": [document_of(profile) for profile in profiles]}}, position


def chosen_profile(old: WorklistProfile | None, key: str, ae_title: str) -> WorklistProfile | None:
    """The modality's own profile after the change (None: the default profile)."""
    if key == CUSTOM and old is not None:
        return replace(old, ae_title=ae_title)
    known = model(key)
    return known.profile(ae_title) if known else None


def removal(config: Config, ae_title: str) -> dict[str, Any]:
    """The lists without the modality `ae_title` and its profile."""
    peers = [peer_document(peer) for peer in config.peers if peer.ae_title != ae_title]
    profiles = [document_of(profile) for profile in config.worklist.profiles if profile.ae_title != ae_title]
    return {"peers": peers, "worklist": {"profiles": profiles}}


def field_of(position: int) -> FieldOf:
    """Problems of the edited peer go to its fields; those of the worklist profiles to the model."""

    def field(key: Key) -> str | None:
        if key[:2] == ("peers", position):
            return str(key[2]) if len(key) > 2 and key[2] in PEER_FIELDS else "ae_title"
        if key[:2] == ("worklist", "profiles"):
            return "model"
        return None

    return field


def previews(config: Config, ae_title: str, today: date) -> list[Preview]:
    """What the sample order looks like on this modality under each choice of the list."""
    choices: list[tuple[str, WorklistProfile]] = [
        (DEFAULT, replace(config.worklist.default_profile, ae_title=ae_title))
    ]
    choices += [(known.key, known.profile(ae_title)) for known in MODELS]
    own = own_profile(config, ae_title)
    if model_key(own) == CUSTOM and own is not None:
        choices.append((CUSTOM, own))
    return [Preview(key, str(MODEL_NAMES[key]), dict(preview(profile, today))) for key, profile in choices]
