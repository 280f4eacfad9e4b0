"""The configuration's layers: the main file (Ansible's), then the console settings file over it.

A layer is a parsed YAML mapping and the file it came from. `merged` puts the layers over each other
(mappings key by key, lists and values replaced whole); `source_of` says which file a key's value
came from, so that every problem names the file to edit. README.md in this folder says why there
are two files and who writes each.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from appliance.config.checks import Key, Problem

CONSOLE_SETTINGS = Path("settings") / "console.yaml"
# Keys the console layer may not set: where the layer itself is found.
MAIN_FILE_ONLY: tuple[Key, ...] = (("console_settings_file",), ("storage", "data_directory"))


class UnreadableLayer(Exception):
    """A layer's file cannot be read or parsed; `source` names it and the message says why."""

    def __init__(self, source: str, message: str) -> None:
        self.source = source
        super().__init__(message)


@dataclass(frozen=True)
class Layer:
    """One configuration file's keys and values (`source`: the file, or what stands for it)."""

    source: str
    document: dict[str, Any]


def read_layer(path: Path, missing_ok: bool = False) -> Layer | None:
    """The mapping in the YAML file at `path` (an empty file is an empty mapping); None when the file
    does not exist and `missing_ok`. Raises UnreadableLayer."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        if missing_ok:
            return None
        raise UnreadableLayer(source, f"cannot read the file: {error}") from error
    except (OSError, UnicodeDecodeError) as error:
        raise UnreadableLayer(source, f"cannot read the file: {error}") from error
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise UnreadableLayer(source, f"not valid YAML: {error}") from error
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise UnreadableLayer(source, f"the file must hold keys and values, not a {type(document).__name__}")
    return Layer(source, document)


def console_settings_path(main: dict[str, Any], default_data_directory: str) -> Path:
    """Where the console settings of this main document are: its `console_settings_file`, relative to
    the data directory, else `<data_directory>/settings/console.yaml`."""
    data_directory = mapping_get(main, "storage", "data_directory")
    if not isinstance(data_directory, str) or not data_directory:
        data_directory = default_data_directory
    named = main.get("console_settings_file")
    relative = Path(named) if isinstance(named, str) and named else CONSOLE_SETTINGS
    return (Path(data_directory) / relative).absolute()


def mapping_get(document: dict[str, Any], section: str, key: str) -> Any:
    """`document[section][key]`, or None when either is missing or not a mapping."""
    value = document.get(section)
    return value.get(key) if isinstance(value, dict) else None


def merged(layers: list[Layer]) -> dict[str, Any]:
    """The layers put over each other, the last one on top."""
    document: dict[str, Any] = {}
    for layer in layers:
        document = merge(document, layer.document)
    return document


def merge(below: dict[str, Any], above: dict[str, Any]) -> dict[str, Any]:
    """`above` over `below`: mappings merged key by key, anything else (lists too) replaced whole."""
    result = copy.deepcopy(below)
    for key, value in above.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def holds(document: Any, key: Key) -> bool:
    """Whether `document` sets `key` (or a list the key is inside: lists are replaced whole)."""
    node = document
    for part in key:
        if isinstance(node, list):
            return True
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def source_of(key: Key, layers: list[Layer]) -> str:
    """The file whose value of `key` is in force: the top layer that sets it, else the main file
    (which also answers for the defaults)."""
    for layer in reversed(layers[1:]):
        if holds(layer.document, key):
            return layer.source
    return layers[0].source


def layer_problems(layers: list[Layer]) -> list[Problem]:
    """Keys an upper layer sets that only the main file may set."""
    return [
        Problem(key, "may be set only in the main configuration file")
        for layer in layers[1:]
        for key in MAIN_FILE_ONLY
        if holds(layer.document, key)
    ]
