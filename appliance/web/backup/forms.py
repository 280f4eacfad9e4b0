"""The "back up now" button: a POST form holding only its CSRF token."""

from __future__ import annotations

from flask_wtf import FlaskForm


class BackUpNowForm(FlaskForm):
    """Only the CSRF token: what to back up is the configuration's."""
