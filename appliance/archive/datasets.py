"""Datasets built from plain values, as the archive's answers are: keyword to value, a list of such
mappings standing for a sequence, a backslash-separated string for a multi-valued attribute."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence


def dataset_from(values: Mapping[str, Any]) -> Dataset:
    """A Dataset from keyword to value, lists of mappings becoming sequences."""
    dataset = Dataset()
    for keyword, value in values.items():
        setattr(dataset, keyword, value_for(value))
    return dataset


def value_for(value: Any) -> Any:
    """A plain value as pydicom takes it: sequences for lists, lists for multi-valued strings."""
    if value is None:
        return None
    if isinstance(value, list):
        return Sequence([dataset_from(item) for item in value])
    if isinstance(value, str) and "\\" in value:
        return value.split("\\")
    return value
