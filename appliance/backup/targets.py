"""Where backups go: the repository of `backup.repository` (off site over ssh://, or a local path)
and the rotating USB disks, recognised by their file-system label.

A USB disk is found with `blkid -L LABEL` (no udev rule needed), mounted with `nodev,nosuid,noexec`
on the fixed mountpoint, and unmounted after the run; its repository is the folder
`pacs-appliance` on it. `backup.usb.stand_in_directory` (development and tests) replaces the disks
by sub-folders named by label, "mounted" as a symbolic link at the mountpoint.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from appliance.backup import BackupError
from appliance.config import BackupConfig

REMOTE = "remote"  # an ssh:// repository: append-only on the server's side, never pruned by the box
LOCAL = "local"  # a local path (a NAS mount, a folder for `make run`): the box prunes it
USB = "usb"  # the rotating disks: the box prunes each
USB_REPOSITORY_FOLDER = "pacs-appliance"
MOUNT_OPTIONS = "nodev,nosuid,noexec"


@dataclass(frozen=True)
class Target:
    """`name` is borgmatic's label of the repository (remote, local or usb)."""

    name: str
    repository: str

    @property
    def box_may_prune(self) -> bool:
        """The box prunes the repositories it owns; an off-site one is pruned from the server only."""
        return self.name != REMOTE


def targets_of(backup: BackupConfig) -> list[Target]:
    """Every configured target, the repository first."""
    found = []
    if backup.repository:
        name = REMOTE if backup.repository.startswith("ssh://") else LOCAL
        found.append(Target(name, backup.repository))
    if backup.usb.labels:
        found.append(Target(USB, str(backup.usb.mountpoint / USB_REPOSITORY_FOLDER)))
    return found


def target_named(backup: BackupConfig, name: str) -> Target:
    """The target called `name`; raises BackupError when it is not configured."""
    for target in targets_of(backup):
        if target.name == name:
            return target
    configured = ", ".join(target.name for target in targets_of(backup)) or "aucune"
    raise BackupError(f"La cible de sauvegarde « {name} » n'est pas configurée (configurées : {configured}).")


def present_labels(backup: BackupConfig) -> list[str]:
    """The configured labels whose disk is plugged in now, in the configured order."""
    return [label for label in backup.usb.labels if device_of(backup, label) is not None]


def device_of(backup: BackupConfig, label: str) -> Path | None:
    """The block device (or stand-in folder) carrying `label`, None when absent."""
    if backup.usb.stand_in_directory is not None:
        folder = backup.usb.stand_in_directory / label
        return folder if folder.is_dir() else None
    found = subprocess.run(["blkid", "-L", label], capture_output=True, text=True, check=False)
    device = found.stdout.strip()
    return Path(device) if found.returncode == 0 and device else None


@contextmanager
def mounted(backup: BackupConfig, label: str) -> Iterator[Path]:
    """Mount the disk labelled `label` at the mountpoint for the block, then unmount it (also on
    error). Raises BackupError (in French) when it is absent or cannot be mounted."""
    device = device_of(backup, label)
    if device is None:
        raise BackupError(f"Le disque de sauvegarde {label} n'est pas branché.")
    mountpoint = backup.usb.mountpoint
    if backup.usb.stand_in_directory is not None:
        yield from stand_in_mount(device, mountpoint)
        return
    mountpoint.mkdir(parents=True, exist_ok=True)
    if os.path.ismount(mountpoint):
        raise BackupError(f"Un disque est déjà monté sur {mountpoint} : la sauvegarde ne le touche pas.")
    command(["mount", "-o", MOUNT_OPTIONS, str(device), str(mountpoint)], f"Le disque {label} n'a pas pu être monté.")
    try:
        yield mountpoint
    finally:
        command(["umount", str(mountpoint)], f"Le disque {label} n'a pas pu être démonté : ne pas le débrancher.")


def stand_in_mount(folder: Path, mountpoint: Path) -> Iterator[Path]:
    """The stand-in of a mount: a symbolic link from the mountpoint to the disk's folder."""
    mountpoint.parent.mkdir(parents=True, exist_ok=True)
    if mountpoint.is_symlink():
        mountpoint.unlink()
    mountpoint.symlink_to(folder, target_is_directory=True)
    try:
        yield mountpoint
    finally:
        mountpoint.unlink(missing_ok=True)


def command(arguments: list[str], reason: str) -> None:
    """Run `arguments`; BackupError(`reason`, its stderr) when it fails."""
    try:
        done = subprocess.run(arguments, capture_output=True, text=True, check=False, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BackupError(reason, f"{arguments[0]}: {error}") from error
    if done.returncode != 0:
        raise BackupError(reason, f"{' '.join(arguments)}: {done.stderr.strip()}")
