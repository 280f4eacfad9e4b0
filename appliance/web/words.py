"""Values of the index said in words on every page: a patient's sex, an identity status (PID-32).
Registered as the template filters `sex` and `identity_status`."""

from __future__ import annotations

from flask import Flask
from flask_babel import gettext

IDENTITY_STATUS = {"VALI": "qualified", "PROV": "provisional", "RECUP": "recovered"}


def configure(app: Flask) -> None:
    app.jinja_env.filters.update(sex=sex_words, identity_status=identity_status_words)


def sex_words(value: str | None) -> str:
    """DICOM's M, F, O in words; '—' when unknown."""
    words = {"M": gettext("male"), "F": gettext("female"), "O": gettext("other")}
    return words.get(value or "", value or "—")


def identity_status_words(value: str) -> str:
    """An identity status value (PID-32) in words, the value itself when unknown."""
    words = {
        "qualified": gettext("qualified identity"),
        "provisional": gettext("provisional identity"),
        "recovered": gettext("recovered identity"),
    }
    return words.get(IDENTITY_STATUS.get(value, ""), value)
