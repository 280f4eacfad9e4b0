"""The local repository of `make run` (development only): "back up now" in the console works on a
fresh data folder. Its passphrase file is made (random, 0600) and the repository created the first
time; a box is commissioned by hand instead (README.md, Commissioning)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from appliance.backup.nightly import initialise
from appliance.backup.targets import LOCAL, targets_of
from appliance.config import Config


def prepare_development_repository(config: Config) -> bool:
    """In development, make the passphrase and the local repository when missing; True when it
    created the repository. Nothing happens on a box (production mode) or for other targets."""
    if not config.is_development:
        return False
    passphrase = config.backup.passphrase_file
    if not passphrase.exists():
        passphrase.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(passphrase, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as stream:
            stream.write(secrets.token_urlsafe(32) + "\n")
    for target in targets_of(config.backup):
        if target.name == LOCAL and not (Path(target.repository) / "config").is_file():
            initialise(config, target)
            return True
    return False
