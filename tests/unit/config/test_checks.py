"""What the schema cannot say: impossible hosts, two services on one port, AE titles refused in words."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.config import ConfigError
from appliance.config.checks import addresses_overlap, is_host_name
from appliance.config.loader import config_from_document


def problems_of(document: dict[str, Any]) -> list[str]:
    """The problem lines of `document` (loaded as the file `appliance.yaml`), without the file name."""
    with pytest.raises(ConfigError) as raised:
        config_from_document(document, "appliance.yaml")
    lines = str(raised.value).splitlines()
    assert all(line.startswith("appliance.yaml: ") for line in lines)
    return [line.removeprefix("appliance.yaml: ") for line in lines]


@pytest.mark.parametrize(
    "host", ["192.168.10.21", "::1", "fe80::1", "scanner-salle1", "pacs.cabinet.example.", "localhost", "ct1"]
)
def test_addresses_and_host_names_are_accepted(host: str) -> None:
    config = config_from_document({"peers": [{"ae_title": "CT1", "host": host}]}, "appliance.yaml")
    assert config.peers[0].host == host


@pytest.mark.parametrize(
    "host", ["scanner salle 1", "192.168.1.300", "10.0.0", "-ct1", "ct_1", "scanner..", "a" * 64, "http://ct1"]
)
def test_impossible_peer_hosts_are_refused(host: str) -> None:
    problems = problems_of({"peers": [{"ae_title": "CT1", "host": host}]})
    assert problems == [f"peers[0].host: {host!r} is neither an IP address nor a valid host name"]


def test_an_empty_peer_host_is_refused_once() -> None:
    assert len(problems_of({"peers": [{"ae_title": "CT1", "host": ""}]})) == 1


def test_impossible_bind_addresses_and_ris_host_are_refused() -> None:
    problems = problems_of(
        {
            "dicom": {"bind_address": "0.0.0.0.0"},
            "worklist": {"bind_address": "toutes les interfaces"},
            "hl7": {"bind_address": "127.0.0.1", "ris": {"host": "ris cabinet"}},
        }
    )
    assert problems == [
        "dicom.bind_address: '0.0.0.0.0' is neither an IP address nor a valid host name",
        "worklist.bind_address: 'toutes les interfaces' is neither an IP address nor a valid host name",
        "hl7.ris.host: 'ris cabinet' is neither an IP address nor a valid host name",
    ]


def test_an_empty_ris_host_means_no_ris() -> None:
    assert not config_from_document({"hl7": {"ris": {"host": ""}}}, "appliance.yaml").hl7.ris.enabled


def test_two_services_on_one_port_are_refused() -> None:
    problems = problems_of(
        {
            "dicom": {"bind_address": "0.0.0.0", "port": 11112},
            "worklist": {"bind_address": "127.0.0.1", "port": 11112},
            "hl7": {"bind_address": "::", "port": 11112},
        }
    )
    assert problems == [
        "worklist.port: port 11112 is also dicom.port, on overlapping addresses "
        "(dicom.bind_address 0.0.0.0, worklist.bind_address 127.0.0.1)",
        "hl7.port: port 11112 is also dicom.port, on overlapping addresses "
        "(dicom.bind_address 0.0.0.0, hl7.bind_address ::)",
    ]


def test_one_port_on_distinct_addresses_or_port_zero_is_fine() -> None:
    config_from_document(
        {
            "dicom": {"bind_address": "192.168.10.2", "port": 104},
            "worklist": {"bind_address": "127.0.0.1", "port": 104},
            "hl7": {"bind_address": "127.0.0.1", "port": 0},
        },
        "appliance.yaml",
    )
    config_from_document({port: {"port": 0, "bind_address": "127.0.0.1"} for port in ("dicom", "worklist", "hl7")}, "a")


@pytest.mark.parametrize(
    ("first", "second", "overlap"),
    [
        ("0.0.0.0", "127.0.0.1", True),
        ("127.0.0.1", "0.0.0.0", True),
        ("::", "127.0.0.1", True),
        ("::", "0.0.0.0", True),
        ("0.0.0.0", "::1", False),
        ("127.0.0.1", "192.168.1.2", False),
        ("0.0.0.0", "pacs.local", True),
        ("pacs.local", "pacs.local", True),
    ],
)
def test_which_addresses_overlap(first: str, second: str, overlap: bool) -> None:
    assert addresses_overlap(first, second) is overlap


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("SCANNER_SALLE_NUMERO_1", "AE title longer than 16 characters ('SCANNER_SALLE_NUMERO_1' has 22)"),
        ("CT\\1", "AE title may not contain a backslash or control characters ('CT\\\\1')"),
        ("CT\t1", "AE title may not contain a backslash or control characters ('CT\\t1')"),
        ("", "AE title may not be empty or only spaces"),
        ("    ", "AE title may not be empty or only spaces"),
        ("ÉCHO", "AE title may hold only ASCII letters, digits, spaces and punctuation ('ÉCHO')"),
        (" CT1", "AE title may not begin or end with a space (' CT1')"),
    ],
)
def test_ae_titles_are_refused_in_words(title: str, expected: str) -> None:
    problems = problems_of({"dicom": {"ae_title": title}, "worklist": {"ae_title": title}})
    assert problems == [f"dicom.ae_title: {expected}", f"worklist.ae_title: {expected}"]
    assert not any("\\x" in problem for problem in problems)  # no regular expression


def test_station_ae_titles_are_checked_too() -> None:
    problems = problems_of({"worklist": {"stations": [{"ae_title": "SCANNER_SALLE_NUMERO_1", "modality": "CT"}]}})
    assert problems == [
        "worklist.stations[0].ae_title: AE title longer than 16 characters ('SCANNER_SALLE_NUMERO_1' has 22)"
    ]


def test_host_names_follow_rfc_1123() -> None:
    assert is_host_name("a" * 63 + ".example")
    assert not is_host_name("a" * 64 + ".example")
    assert not is_host_name(".".join(["abcdefg"] * 32) + ".fr")  # longer than 253 characters
