"""The console's writer of its own layer (`<data_directory>/settings/console.yaml`, README.md in this
folder): a change from a setup or settings page is merged into that file's keys, the whole
configuration is validated by the loader's own code (so every refusal reads exactly as `appliance
config check` says it, naming the key), and only a valid result is written, atomically: a temporary
file beside it, fsync, rename. The rest of the layer is kept; Ansible's main file is never touched.

Two pages saving at once take turns on a lock file beside the layer. Comments written by hand in
the layer do not survive a write (the file is YAML written back from its keys).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from appliance.config.checks import Key, Problem
from appliance.config.layers import Layer, merge, read_layer
from appliance.config.loader import (
    DEVELOPMENT_SOURCE,
    Config,
    configuration_problems,
    development_document,
    key_path,
    problem_lines,
)

FILE_MODE = 0o640  # the daemons' group reads it; nobody else
FOLDER_MODE = 0o750
HEADER = (
    "# Settings changed in the web console (setup and settings pages), merged over the main file.\n"
    "# Written by the console: edit by hand only while nobody uses those pages.\n"
)


@dataclass(frozen=True)
class WriteResult:
    """What became of a change: the problems that refused it (nothing written), else the keys whose
    value in the console layer changed (`peers`, `hl7.ris.host`; a list counts as one key)."""

    problems: tuple[Problem, ...] = ()
    lines: tuple[str, ...] = ()  # the problems as `appliance config check` prints them, `file: key: message`
    changed: tuple[str, ...] = ()

    @property
    def written(self) -> bool:
        return not self.problems


def main_layer(config: Config) -> Layer:
    """The main layer `config` was read from (the file, or the embedded development defaults).
    Raises UnreadableLayer when the file cannot be read any more."""
    if config.source == DEVELOPMENT_SOURCE:
        return Layer(DEVELOPMENT_SOURCE, development_document(config.storage.data_directory))
    layer = read_layer(Path(config.source))
    assert layer is not None
    return layer


def console_document(config: Config) -> dict[str, Any]:
    """The keys the console layer of `config` sets now ({} when the file does not exist)."""
    layer = read_layer(config.console_settings_file, missing_ok=True)
    return layer.document if layer is not None else {}


def write_console_settings(config: Config, changes: dict[str, Any]) -> WriteResult:
    """Merge `changes` into the console layer (mappings key by key, lists replaced whole), validate
    the whole configuration and write the layer when it is valid. Raises UnreadableLayer when a file
    cannot be read, OSError when the layer cannot be written."""
    path = config.console_settings_file
    with layer_lock(path):
        before = console_document(config)
        after = merge(before, changes)
        layers = [main_layer(config), Layer(str(path), after)]
        problems = configuration_problems(layers)
        if problems:
            return WriteResult(tuple(problems), tuple(problem_lines(problems, layers)))
        changed = changed_keys(before, after)
        if changed:
            write_atomically(path, HEADER + yaml.safe_dump(after, allow_unicode=True, sort_keys=False))
    return WriteResult(changed=tuple(changed))


def changed_keys(before: Any, after: Any, key: Key = ()) -> list[str]:
    """The key paths whose values differ, mappings walked key by key (a missing one is empty),
    anything else compared whole."""
    if (isinstance(before, dict) and after is None) or (before is None and isinstance(after, dict)):
        before, after = before or {}, after or {}
    if isinstance(before, dict) and isinstance(after, dict):
        names = [*before, *(name for name in after if name not in before)]
        return [found for name in names for found in changed_keys(before.get(name), after.get(name), (*key, name))]
    return [] if before == after else [key_path(key)]


@contextlib.contextmanager
def layer_lock(path: Path) -> Iterator[None]:
    """Held while one writer reads, merges and writes the layer at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    with open(path.with_name(f".{path.name}.lock"), "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        yield


def write_atomically(path: Path, text: str) -> None:
    """`text` at `path`, all or nothing: a reader sees the old file or the new one, never half."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, FILE_MODE)  # whatever the umask
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself survives a power cut
    finally:
        os.close(folder)
