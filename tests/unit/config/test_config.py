"""The configuration file: schema validation, every error at once with the file and the key, what the
schema cannot say (hosts, ports, AE titles in words), defaults, the generated sample."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.config import Config, ConfigError, development_config, load_config
from appliance.config.loader import config_from_document, resolved, schema
from appliance.config.sample import reference_markdown, sample_yaml


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_empty_file_gives_the_production_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path / "appliance.yaml", ""))
    assert config.mode == "production"
    assert config.dicom.port == 104
    assert config.storage.data_directory == Path("/srv/appliance")
    assert config.database_url == "sqlite:////srv/appliance/index/appliance.sqlite"
    assert config.peers == ()


def test_every_problem_is_reported_at_once_with_file_and_key(tmp_path: Path) -> None:
    path = write(
        tmp_path / "appliance.yaml",
        "dicom:\n  port: 70000\n  ae_title: WAY_TOO_LONG_AE_TITLE\nstorage:\n  colour: blue\n"
        "peers:\n  - ae_title: CT1\n    rights: [store, fly]\n  - {ae_title: CT2, host: scanner salle 2}\n"
        "worklist:\n  port: 2575\n",
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    lines = str(raised.value).splitlines()
    for expected in (
        "dicom.port: 70000 is greater than the maximum of 65535",
        "dicom.ae_title: AE title longer than 16 characters",
        "storage.colour: unknown key",
        "peers[0].host: required key missing",
        "peers[0].rights[1]: 'fly' is not one of",
        "peers[1].host: 'scanner salle 2' is neither an IP address nor a valid host name",
        "hl7.port: port 2575 is also worklist.port",
    ):
        assert any(line.startswith(f"{path}: {expected}") for line in lines), expected
    assert all(line.startswith(f"{path}: ") for line in lines)


def test_duplicate_peer_titles_are_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.yaml", "peers:\n  - {ae_title: CT1, host: 10.0.0.1}\n  - {ae_title: CT1, host: 10.0.0.2}\n"
    )
    with pytest.raises(ConfigError, match=r"peers\[1\].ae_title: 'CT1' is listed twice"):
        load_config(path)


def test_broken_yaml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "a.yaml", "dicom: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "nowhere.yaml")


def without_sources(config: Config) -> Config:
    return dataclasses.replace(config, source="", layers=())


def test_the_sample_holds_the_real_defaults() -> None:
    """Loading the printed sample gives the same configuration as an empty file."""
    sample = config_from_document(yaml.safe_load(sample_yaml()), "sample")
    assert without_sources(sample) == without_sources(config_from_document({}, "empty"))


def schema_keys(node: dict[str, Any]) -> Iterator[str]:
    for name, reference in resolved(node).get("properties", {}).items():
        child = resolved(reference)
        yield name
        yield from schema_keys(child)
        yield from schema_keys(resolved(child.get("items", {})))


def test_the_sample_names_every_key() -> None:
    text = sample_yaml()
    missing = [name for name in schema_keys(schema()) if not re.search(rf"^[ #-]*{name}:", text, re.MULTILINE)]
    assert missing == []


def example_blocks(text: str) -> Iterator[tuple[str, str]]:
    """(section, YAML) of each commented-out example list in the sample, without its comment marks
    (section "" for a top-level list)."""
    lines = text.splitlines()
    section = ""
    for position, line in enumerate(lines):
        if re.match(r"^[a-z_]+:", line):
            section = line.split(":")[0]
        heading = re.fullmatch(r"( *)# For example, instead of the empty list below:", line)
        if heading:
            prefix = heading.group(1) + "# "
            block = []
            for following in lines[position + 1 :]:
                if not following.startswith(prefix):
                    break
                block.append(following.removeprefix(prefix))
            yield (section if heading.group(1) else ""), "\n".join(block)


def test_the_example_entries_of_the_sample_are_valid() -> None:
    blocks = list(example_blocks(sample_yaml()))
    assert [next(iter(yaml.safe_load(block))) for _, block in blocks] == [
        "peers", "rules", "prefetch", "stations", "profiles", "exam_types", "rates", "procedure_codes",
    ]  # fmt: skip
    destination = {"peers": [{"ae_title": "PACS_REGION", "host": "192.0.2.1"}]}  # the example rule's
    for section, block in blocks:
        document = yaml.safe_load(block)
        config = config_from_document({section: document, **destination} if section else document, "example")
        assert config.peers or config.worklist.stations or config.worklist.profiles or section in ("dose", "billing")
        assert section != "forward" or config.forward.rules or config.forward.prefetch
    named = {next(iter(yaml.safe_load(block))): block for _, block in blocks}
    dose = config_from_document({"dose": yaml.safe_load(named["exam_types"])}, "example").dose
    assert [found.code for found in dose.exam_types] == ["ct-head"]
    billing = config_from_document({"billing": yaml.safe_load(named["procedure_codes"])}, "example").billing
    assert [(found.code, found.in_scope) for found in billing.procedure_codes] == [("QEQK004", True)]


def test_every_key_has_a_description_and_an_example() -> None:
    def walk(node: dict, path: str) -> list[str]:
        missing = []
        for name, reference in node.get("properties", {}).items():
            child = resolved(reference)
            if "description" not in child:
                missing.append(f"{path}{name}: description")
            if child.get("type") not in ("object", "array") and "examples" not in child:
                missing.append(f"{path}{name}: examples")
            missing += walk(child, f"{path}{name}.")
            missing += walk(resolved(child.get("items", {})), f"{path}{name}[].")
        return missing

    assert walk(schema(), "") == []


def test_reference_page_is_up_to_date() -> None:
    committed = Path(__file__).parents[3] / "appliance" / "config" / "REFERENCE.md"
    assert committed.read_text(encoding="utf-8") == reference_markdown(), "run `make config-reference`"


def test_development_defaults(tmp_path: Path) -> None:
    config = development_config(tmp_path)
    assert config.is_development
    assert (config.dicom.bind_address, config.dicom.port, config.dicom.ae_title) == ("127.0.0.1", 11112, "APPLIANCE")
    assert config.storage.archive_directory == tmp_path / "archive"
    # findscu (calling AE FINDSCU, no modality) sees orders without a Scheduled Station AE Title.
    assert not config.worklist.default_profile.filter_on_calling_ae
