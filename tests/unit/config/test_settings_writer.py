"""The console's writer: a valid change goes into the console layer (the rest of it kept), an invalid
one is refused with exactly the loader's words and leaves the file as it was, keys of the main file
only are refused, and the file is written whole with restricted rights."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from appliance.config import ConfigError, development_config, load_config
from appliance.config.writer import changed_keys, console_document, write_console_settings

MAIN = """
site_name: Cabinet du Parc
dicom: {ae_title: APPLIANCE, port: 104}
peers:
  - {ae_title: CT1, host: 10.0.0.1}
"""


def main_file(tmp_path: Path) -> Path:
    path = tmp_path / "etc" / "appliance.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(f"storage:\n  data_directory: {tmp_path / 'data'}\n{MAIN}", encoding="utf-8")
    return path


def test_a_valid_change_is_written_and_merged_over_the_main_file(tmp_path: Path) -> None:
    path = main_file(tmp_path)
    config = load_config(path)
    result = write_console_settings(config, {"site_name": "Cabinet des Tilleuls", "mail": {"relay_port": 587}})
    assert result.written and result.changed == ("site_name", "mail.relay_port")
    again = load_config(path)
    assert again.site_name == "Cabinet des Tilleuls" and again.mail.relay_port == 587
    assert again.dicom.ae_title == "APPLIANCE" and [peer.ae_title for peer in again.peers] == ["CT1"]
    written = config.console_settings_file
    assert stat.S_IMODE(written.stat().st_mode) == 0o640
    assert written.read_text(encoding="utf-8").startswith("# Settings changed in the web console")
    assert list(written.parent.iterdir()) == [written] or all(
        entry == written or entry.name.endswith(".lock") for entry in written.parent.iterdir()
    )  # no temporary file left


def test_the_rest_of_the_console_layer_is_kept(tmp_path: Path) -> None:
    config = load_config(main_file(tmp_path))
    write_console_settings(config, {"hl7": {"ris": {"host": "192.168.10.5", "port": 2576}}})
    write_console_settings(config, {"hl7": {"ris": {"port": 2577}}, "backup": {"time": "03:15"}})
    assert console_document(config) == {
        "hl7": {"ris": {"host": "192.168.10.5", "port": 2577}},
        "backup": {"time": "03:15"},
    }


def test_an_invalid_change_is_refused_with_the_loaders_own_words_and_the_file_stays(tmp_path: Path) -> None:
    path = main_file(tmp_path)
    config = load_config(path)
    write_console_settings(config, {"site_name": "Cabinet des Tilleuls"})
    before = config.console_settings_file.read_bytes()
    bad = [{"ae_title": "ÉCHO 1", "host": "10.0.0.300", "port": 104}]
    result = write_console_settings(config, {"peers": bad, "backup": {"time": "25:00"}})
    assert not result.written and result.changed == ()
    assert config.console_settings_file.read_bytes() == before
    # What `appliance config check` says of the same file, word for word:
    config.console_settings_file.write_text(yaml.safe_dump({"peers": bad, "backup": {"time": "25:00"}}))
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert list(result.lines) == refused.value.problems
    keys = {problem.key: problem.message for problem in result.problems}
    assert "ASCII" in keys[("peers", 0, "ae_title")]
    assert keys[("peers", 0, "host")] == "'10.0.0.300' is neither an IP address nor a valid host name"
    assert ("backup", "time") in keys


def test_keys_of_the_main_file_only_are_refused(tmp_path: Path) -> None:
    config = load_config(main_file(tmp_path))
    result = write_console_settings(config, {"storage": {"data_directory": "/elsewhere"}})
    assert [(problem.key, problem.message) for problem in result.problems] == [
        (("storage", "data_directory"), "may be set only in the main configuration file")
    ]
    assert not config.console_settings_file.exists()


def test_the_development_defaults_take_a_console_layer_too(tmp_path: Path) -> None:
    config = development_config(tmp_path / "data")
    assert write_console_settings(config, {"site_name": "Essai"}).written
    assert development_config(tmp_path / "data").site_name == "Essai"


def test_nothing_changed_writes_nothing(tmp_path: Path) -> None:
    config = load_config(main_file(tmp_path))
    write_console_settings(config, {"site_name": "Essai"})
    written = config.console_settings_file.stat().st_mtime_ns
    assert write_console_settings(config, {"site_name": "Essai"}).changed == ()
    assert config.console_settings_file.stat().st_mtime_ns == written


def test_changed_keys_walk_mappings_and_take_lists_whole() -> None:
    before = {"hl7": {"ris": {"host": "a", "port": 1}}, "peers": [{"ae_title": "A"}]}
    after = {"hl7": {"ris": {"host": "b", "port": 1}, "facility": "X"}, "peers": [{"ae_title": "B"}]}
    assert changed_keys(before, after) == ["hl7.ris.host", "hl7.facility", "peers"]
