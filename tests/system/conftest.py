"""Fixtures of the system tests: the built trees and images, and a booted test VM.

These tests need root, the images built by `make image image-test-variant` and the packages of
`make image-deps`; they run only when APPLIANCE_SYSTEM_TESTS=1 (set by `make test-image` and
`make vm-test`), so that a plain `pytest` of the package skips them instead of failing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import ANSIBLE_VENV, IMAGE_TEST_DIR, TEST_KEY, VM_WORK
from vm import ApplianceVM


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "static: checks of the built tree without running it")
    config.addinivalue_line("markers", "host: real daemons on the build machine (loopback only)")
    config.addinivalue_line("markers", "nspawn: the test tree booted in systemd-nspawn")
    config.addinivalue_line("markers", "vm: the test image booted in qemu")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("APPLIANCE_SYSTEM_TESTS") == "1":
        return
    skip = pytest.mark.skip(
        reason="system tests run only through 'make test-image' or 'make vm-test' (APPLIANCE_SYSTEM_TESTS=1)"
    )
    for item in items:
        if Path(str(item.path)).is_relative_to(Path(__file__).parent):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def test_tree() -> Path:
    tree = IMAGE_TEST_DIR / "tree"
    if not (tree / "etc" / "os-release").exists():
        pytest.fail(f"no test tree at {tree}: run 'make image-test-variant' first")
    return tree


@pytest.fixture(scope="session")
def test_image() -> Path:
    image = IMAGE_TEST_DIR / "appliance.qcow2"
    if not image.exists():
        pytest.fail(f"no test image at {image}: run 'make image-test-variant' first")
    return image


@pytest.fixture(scope="session")
def ansible_playbook() -> Path:
    program = ANSIBLE_VENV / "bin" / "ansible-playbook"
    if not program.exists():
        pytest.fail("no Ansible in build/ansible-venv: run 'make image-deps'")
    return program


@pytest.fixture(scope="session")
def booted_vm(test_image: Path) -> Iterator[ApplianceVM]:
    """The test image booted once with two system and two data disks, shared by the VM tests."""
    workdir = VM_WORK / "full"
    shutil.rmtree(workdir, ignore_errors=True)
    ports = {"ssh": 22, "dicom": 104, "http": 80, "https": 443}
    vm = ApplianceVM(image=test_image, workdir=workdir, ssh_key=TEST_KEY, data_disks=2, guest_ports=ports)
    vm.start()
    try:
        vm.boot_seconds = vm.wait_ssh(timeout=420)  # type: ignore[attr-defined]
        yield vm
    finally:
        vm.stop()
