"""The deferred tier's stores (R1): another mount point (`FolderStore`) or an S3-compatible object
store (`S3Store`, through boto3). What `archive.tiers` moves there and `archive.retention` purges.

Each store keeps an instance's bytes unchanged at a `location` derived from the instance's path in
the archive (same date and UID-hash layout, under the folder or the bucket's prefix), so the
deferred copy of a study is as easy to find by hand as the original was. Every store can read back
what it holds (`digest`): a move is verified against the index's SHA-256 at the destination before
the original is removed.

Reading: a folder is read where it is (a mount point); an object is fetched into `staging/` under the
data directory, checked against the index's SHA-256, and served from there (staged copies older than
`STAGING_LIFETIME` are removed as new ones come in).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from appliance.archive.storage import make_directories_durably, sha256_of_file, sync_directory
from appliance.config import TiersConfig

FOLDER = "folder"
S3 = "s3"
STAGING_LIFETIME_SECONDS = 30 * 60
PRUNE_EVERY_SECONDS = 60
BLOCK = 1 << 20


class DeferredError(OSError):
    """The deferred tier could not be written or read (the message says which object and why)."""


class DeferredStore(Protocol):
    """A deferred tier: put a file, read back its digest, give a readable path, remove."""

    kind: str

    def put(self, relative_path: str, source: Path) -> str:
        """Copy `source` (an archived file at `relative_path`) into the store; return its location."""
        ...

    def digest(self, location: str) -> str:
        """The SHA-256 of the bytes the store holds at `location` (read back from the store)."""
        ...

    def readable(self, location: str, sha256: str) -> Path: ...

    def fetch(self, location: str, destination: Path) -> None:
        """Write the bytes at `location` to `destination` (a new file)."""
        ...

    def remove(self, location: str) -> None:
        """Remove what the store holds at `location` (nothing when it holds nothing)."""
        ...


class FolderStore:
    """A folder on another mount point (NAS, slow disk): files keep the archive's layout."""

    kind = FOLDER

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def put(self, relative_path: str, source: Path) -> str:
        destination = self.directory / relative_path
        make_directories_durably(destination.parent)
        temporary = destination.with_name(f".{uuid.uuid4().hex}.part")
        try:
            copy_and_sync(source, temporary)
            os.replace(temporary, destination)  # only ever a copy of the same instance: ours to replace
            sync_directory(destination.parent)
        finally:
            temporary.unlink(missing_ok=True)
        return relative_path

    def digest(self, location: str) -> str:
        return sha256_of_file(self.directory / location)

    def readable(self, location: str, sha256: str) -> Path:
        path = self.directory / location
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not in the deferred folder")
        return path

    def fetch(self, location: str, destination: Path) -> None:
        copy_and_sync(self.directory / location, destination)

    def remove(self, location: str) -> None:
        (self.directory / location).unlink(missing_ok=True)


class S3Store:
    """A bucket of an S3-compatible object store (MinIO, Ceph, a provider's), keys under `prefix`."""

    kind = S3

    def __init__(self, client: Any, bucket: str, prefix: str, staging_directory: Path) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.staging_directory = staging_directory
        self.pruned_at = 0.0

    def put(self, relative_path: str, source: Path) -> str:
        key = self.prefix + relative_path
        with translated_errors(key):
            self.client.upload_file(str(source), self.bucket, key)
        return key

    def digest(self, location: str) -> str:
        digest = hashlib.sha256()
        with translated_errors(location):
            body = self.client.get_object(Bucket=self.bucket, Key=location)["Body"]
            for block in iter(lambda: body.read(BLOCK), b""):
                digest.update(block)
        return digest.hexdigest()

    def readable(self, location: str, sha256: str) -> Path:
        """The object fetched into `staging/` (reused while fresh), checked against `sha256`."""
        self.prune()
        staged = self.staging_directory / f"{sha256 or uuid.uuid4().hex}.dcm"
        if staged.is_file():
            os.utime(staged)
            return staged
        self.staging_directory.mkdir(parents=True, exist_ok=True)
        temporary = self.staging_directory / f".{uuid.uuid4().hex}.part"
        try:
            self.fetch(location, temporary)
            if sha256 and sha256_of_file(temporary) != sha256:
                raise DeferredError(f"{location}: the object store returned other bytes than those archived")
            os.replace(temporary, staged)
        finally:
            temporary.unlink(missing_ok=True)
        return staged

    def fetch(self, location: str, destination: Path) -> None:
        with translated_errors(location), open(destination, "xb") as stream:
            self.client.download_fileobj(self.bucket, location, stream)
            stream.flush()
            os.fsync(stream.fileno())

    def remove(self, location: str) -> None:
        with translated_errors(location):
            self.client.delete_object(Bucket=self.bucket, Key=location)

    def prune(self) -> None:
        """Remove staged copies nobody read for `STAGING_LIFETIME_SECONDS` (at most once a minute)."""
        moment = time.time()
        if moment - self.pruned_at < PRUNE_EVERY_SECONDS or not self.staging_directory.is_dir():
            return
        self.pruned_at = moment
        for staged in self.staging_directory.glob("*.dcm"):
            try:
                if moment - staged.stat().st_mtime > STAGING_LIFETIME_SECONDS:
                    staged.unlink()
            except FileNotFoundError:
                continue


@contextlib.contextmanager
def translated_errors(location: str) -> Iterator[None]:
    """Turn the S3 client's errors into DeferredError naming the object."""
    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

    try:
        yield
    except (BotoCoreError, ClientError) as error:
        raise DeferredError(f"{location}: {error}") from error


def copy_and_sync(source: Path, destination: Path) -> None:
    """Copy `source` to the new file `destination` and make it durable."""
    with open(source, "rb") as reading, open(destination, "xb") as writing:
        for block in iter(lambda: reading.read(BLOCK), b""):
            writing.write(block)
        writing.flush()
        os.fsync(writing.fileno())


def deferred_store(tiers: TiersConfig, data_directory: Path) -> DeferredStore | None:
    """The configured deferred tier, or None when there is none.

    Raises DeferredError when the S3 credentials file cannot be read.
    """
    if tiers.deferred == FOLDER and tiers.directory is not None:
        return FolderStore(tiers.directory)
    if tiers.deferred == S3:
        return S3Store(s3_client(tiers), tiers.s3.bucket, tiers.s3.prefix, data_directory / "staging")
    return None


def s3_client(tiers: TiersConfig) -> Any:
    """A boto3 S3 client for the configured store (path-style addressing: MinIO and moto want it)."""
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config as ClientConfig  # type: ignore[import-untyped]

    settings = tiers.s3
    options: dict[str, Any] = {"config": ClientConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 5})}
    if settings.endpoint_url:
        options["endpoint_url"] = settings.endpoint_url
    if settings.region:
        options["region_name"] = settings.region
    if settings.credentials_file:
        options.update(read_credentials(Path(settings.credentials_file)))
    return boto3.client("s3", **options)


def read_credentials(path: Path) -> dict[str, str]:
    """The access key id (first line) and secret key (second line) of a credentials file."""
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError as error:
        raise DeferredError(f"{path}: {error.strerror}") from error
    if len(lines) < 2:
        raise DeferredError(f"{path}: needs the access key id and the secret key, one per line")
    return {"aws_access_key_id": lines[0], "aws_secret_access_key": lines[1]}
