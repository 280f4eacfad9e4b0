"""Tokens for the tools that never see the console's session cookie: Weasis (a Java program started
by the browser through `weasis://`) and scripts using DICOMweb.

A token is signed with the console's secret key (itsdangerous, HMAC-SHA1 over a JSON payload), so
every gunicorn worker can check one another worker issued, and carries who asked, for what (a study
or patient scope), and a random nonce. Two kinds:

- a **bearer token** (`Authorization: Bearer ...`) for WADO and DICOMweb requests, valid for a short
  time (`BEARER_MINUTES`) and for the studies it names only;
- a **one-time token** in the address of a Weasis manifest: valid a few minutes, and refused on its
  second use. Its nonce is claimed by creating a file with O_EXCL in `web/used-tokens/` under the data
  folder, which is atomic across processes; claims older than the token's life are swept.

A token is a credential: it is never written to a log.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer

BEARER = "dicomweb-bearer"
MANIFEST = "weasis-manifest"
BEARER_MINUTES = 30  # long enough for Weasis to download a large study, short enough to be harmless
ONE_TIME_MINUTES = 5  # the manifest is fetched by Weasis within seconds of the click
USED_TOKENS = Path("web") / "used-tokens"


@dataclass(frozen=True)
class Grant:
    """What a token allows: who asked (for the audit trail), the studies, and its nonce."""

    username: str
    full_name: str
    study_instance_uids: tuple[str, ...]
    nonce: str


def issue(secret_key: bytes, purpose: str, username: str, full_name: str, studies: Sequence[str]) -> str:
    """A signed token for `purpose` (BEARER or MANIFEST) allowing `studies` to `username`."""
    payload = {"u": username, "n": full_name, "s": list(studies), "r": secrets.token_urlsafe(16)}
    return str(URLSafeTimedSerializer(secret_key, salt=purpose).dumps(payload))


def read(secret_key: bytes, purpose: str, token: str, lifetime_minutes: int) -> Grant | None:
    """The grant of a good token of `purpose`; None when forged, of another purpose or too old."""
    try:
        payload = URLSafeTimedSerializer(secret_key, salt=purpose).loads(token, max_age=lifetime_minutes * 60)
    except BadSignature:  # SignatureExpired is a BadSignature
        return None
    if not isinstance(payload, dict):
        return None
    return Grant(
        username=str(payload.get("u", "")),
        full_name=str(payload.get("n", "")),
        study_instance_uids=tuple(str(uid) for uid in payload.get("s", [])),
        nonce=str(payload.get("r", "")),
    )


def read_bearer(secret_key: bytes, authorization: str) -> Grant | None:
    """The grant of an `Authorization: Bearer <token>` header value (None for anything else)."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return read(secret_key, BEARER, token.strip(), BEARER_MINUTES)


def use_once(secret_key: bytes, data_directory: Path, token: str) -> Grant | None:
    """The grant of a one-time token, claimed now: None when bad, too old or already used."""
    grant = read(secret_key, MANIFEST, token, ONE_TIME_MINUTES)
    if grant is None or not grant.nonce.replace("-", "").replace("_", "").isalnum():
        return None
    folder = data_directory / USED_TOKENS
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    sweep(folder, ONE_TIME_MINUTES * 60)
    try:
        os.close(os.open(folder / grant.nonce, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return None
    return grant


def sweep(folder: Path, older_than_seconds: float) -> None:
    """Forget claims older than a token's life (such a token is refused as too old anyway)."""
    limit = time.time() - older_than_seconds - 60
    for claimed in folder.iterdir():
        try:
            if claimed.stat().st_mtime < limit:
                claimed.unlink()
        except FileNotFoundError:
            continue  # another worker swept it first
