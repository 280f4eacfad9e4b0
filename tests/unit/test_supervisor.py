"""What `make run`'s banner says the background worker does, from the configuration."""

from __future__ import annotations

from appliance.config.loader import config_from_document
from appliance.daemons.supervisor import worker_duties

ALWAYS = ["DICOMweb metadata", "image availability for the RIS", "dose register", "console jobs", "audit trail upkeep"]


def test_the_embedded_defaults_name_compression_and_the_development_report() -> None:
    config = config_from_document({"mode": "development"}, "appliance.yaml")
    assert worker_duties(config) == [
        "verified lossless compression",
        *ALWAYS,
        f"quality-control report at {config.qc.time}",
    ]


def test_what_the_configuration_turns_on_is_named_and_what_it_turns_off_is_not() -> None:
    document = {
        "mode": "production",
        "lossless": {"enabled": False},
        "peers": [{"ae_title": "ORTHANC", "host": "127.0.0.1", "port": 4242}],
        "forward": {
            "rules": [{"name": "Tout vers le PACS régional", "destination": "ORTHANC"}],
            "prefetch": [{"modality": "CT"}],
        },
        "audit": {"syslog": {"host": "siem.example"}},
        "tiers": {"deferred": "folder", "directory": "/srv/deferred", "move_automatically": True},
    }
    assert worker_duties(config_from_document(document, "appliance.yaml")) == [
        *ALWAYS,
        "forwarding (1 rule)",
        "prefetch of priors",
        "audit copy to siem.example",
        "tier move at 03:30",
    ]
