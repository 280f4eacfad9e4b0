"""The `dose` and `billing` sections: defaults (the seeds' rates, the NRD of annex 2), a later rate a
practice adds, and a pattern Python cannot compile refused with its key."""

from __future__ import annotations

from datetime import date

import pytest

from appliance.config import ConfigError
from appliance.config.loader import config_from_document


def test_the_defaults_hold_the_seeds_rates_and_the_radiography_levels() -> None:
    config = config_from_document({}, "defaults")
    assert [(rate.start, rate.euros) for rate in config.billing.rates] == [
        (date(1900, 1, 1), 3.0),
        (date(2008, 1, 1), 3.33),
        (date(2008, 5, 1), 2.66),
    ]
    chest = config.dose.exam_type("dx-chest-pa")
    assert chest is not None and (chest.modality, chest.dap_mgy_cm2) == ("DX", 200)


def test_a_later_rate_is_kept_in_date_order() -> None:
    rates = [
        {"from": "2008-05-01", "euros": 2.66},
        {"from": "2020-01-01", "euros": 2.5},
        {"from": "1900-01-01", "euros": 3},
    ]
    config = config_from_document({"billing": {"rates": rates}}, "settings")
    assert [rate.start.year for rate in config.billing.rates] == [1900, 2008, 2020]


def test_a_pattern_that_is_not_a_regular_expression_is_refused_with_its_key() -> None:
    exam = {"code": "ct-head", "label": "Encéphale", "modality": "CT", "patterns": ["enc(phale"]}
    with pytest.raises(ConfigError, match=r"dose.exam_types\[0\].patterns\[0\]: not a regular expression"):
        config_from_document({"dose": {"exam_types": [exam]}}, "settings")
