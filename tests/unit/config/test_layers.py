"""The console settings file, merged over the main file (Ansible's): merge rules, where it is, and
problems naming the file their key came from."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from appliance.config import ConfigError, development_config, load_config
from appliance.config.layers import Layer, merged, source_of


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def main_file(tmp_path: Path, text: str = "") -> Path:
    """A main file whose data directory is `tmp_path/data`, with `text` after it."""
    return write(tmp_path / "etc" / "appliance.yaml", f"storage:\n  data_directory: {tmp_path / 'data'}\n{text}")


def console_file(tmp_path: Path, text: str) -> Path:
    return write(tmp_path / "data" / "settings" / "console.yaml", text)


MAIN = """
site_name: Cabinet du Parc
dicom: {ae_title: APPLIANCE, port: 104}
peers:
  - {ae_title: CT1, host: 10.0.0.1}
  - {ae_title: MR1, host: 10.0.0.2}
worklist:
  stations: [{ae_title: CT1, modality: CT}]
"""


def test_console_settings_are_merged_over_the_main_file(tmp_path: Path) -> None:
    path = main_file(tmp_path, MAIN)
    console = console_file(tmp_path, "dicom: {port: 11112}\npeers:\n  - {ae_title: US1, host: 10.0.0.3}\n")
    config = load_config(path)
    assert (config.dicom.ae_title, config.dicom.port) == ("APPLIANCE", 11112)  # mappings: key by key
    assert [peer.ae_title for peer in config.peers] == ["US1"]  # lists: replaced whole
    assert [station.ae_title for station in config.worklist.stations] == ["CT1"]  # untouched keys stay
    assert config.site_name == "Cabinet du Parc"
    assert config.layers == (str(path), str(console))


def test_without_a_console_file_the_main_file_is_all(tmp_path: Path) -> None:
    config = load_config(main_file(tmp_path, MAIN))
    assert len(config.layers) == 1
    assert config.console_settings_file == tmp_path / "data" / "settings" / "console.yaml"


def test_an_empty_console_file_changes_nothing(tmp_path: Path) -> None:
    path = main_file(tmp_path, MAIN)
    before = load_config(path)
    console_file(tmp_path, "")
    assert load_config(path).peers == before.peers


def test_the_main_file_may_name_another_console_file(tmp_path: Path) -> None:
    path = main_file(tmp_path, "console_settings_file: elsewhere/console.yaml\n")
    write(tmp_path / "data" / "elsewhere" / "console.yaml", "site_name: Ailleurs\n")
    console_file(tmp_path, "site_name: Pas lu\n")
    assert load_config(path).site_name == "Ailleurs"
    absolute = write(tmp_path / "other.yaml", "site_name: Absolu\n")
    assert load_config(main_file(tmp_path, f"console_settings_file: {absolute}\n")).site_name == "Absolu"


def test_problems_name_the_file_their_key_came_from(tmp_path: Path) -> None:
    path = main_file(tmp_path, MAIN + "lossless: {delay_seconds: -1}\n")
    console = console_file(
        tmp_path,
        "dicom: {ae_title: 'SCANNER_SALLE_NUMERO_1'}\nworklist: {port: 104}\npeers: [{ae_title: US1, host: a b}]\n",
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    lines = str(raised.value).splitlines()
    assert f"{path}: lossless.delay_seconds: -1 is less than the minimum of 0" in lines
    assert f"{console}: dicom.ae_title: AE title longer than 16 characters ('SCANNER_SALLE_NUMERO_1' has 22)" in lines
    assert f"{console}: peers[0].host: 'a b' is neither an IP address nor a valid host name" in lines
    assert any(line.startswith(f"{console}: worklist.port: port 104 is also dicom.port") for line in lines)
    assert len(lines) == 4


def test_the_console_file_may_not_move_itself(tmp_path: Path) -> None:
    path = main_file(tmp_path)
    console = console_file(tmp_path, "console_settings_file: /tmp/x.yaml\nstorage: {data_directory: /tmp}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert str(raised.value).splitlines() == [
        f"{console}: console_settings_file: may be set only in the main configuration file",
        f"{console}: storage.data_directory: may be set only in the main configuration file",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("peers: [unclosed\n", "not valid YAML"), ("- a list\n", "must hold keys and values, not a list")],
)
def test_a_broken_console_file_is_named(tmp_path: Path, text: str, expected: str) -> None:
    path = main_file(tmp_path)
    console = console_file(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as raised:
        load_config(path)
    assert str(raised.value).startswith(f"{console}: ")


def test_the_development_defaults_take_console_settings(tmp_path: Path) -> None:
    console_file(tmp_path, yaml.safe_dump({"peers": [{"ae_title": "CT1", "host": "127.0.0.1"}]}))
    config = development_config(tmp_path / "data")
    assert [peer.ae_title for peer in config.peers] == ["CT1"]
    assert config.is_development and config.dicom.port == 11112


def test_source_of_a_key_inside_a_replaced_list_is_the_upper_layer() -> None:
    layers = [Layer("main", {"peers": [{"ae_title": "A"}], "dicom": {"port": 1}}), Layer("console", {"peers": []})]
    assert source_of(("peers", 0, "host"), layers) == "console"
    assert source_of(("dicom", "port"), layers) == "main"
    assert source_of(("dicom", "ae_title"), layers) == "main"  # defaults answer for the main file
    assert merged(layers) == {"peers": [], "dicom": {"port": 1}}
