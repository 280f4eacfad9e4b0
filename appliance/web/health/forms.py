"""The "send a test alert" button: a POST form holding only its CSRF token."""

from __future__ import annotations

from flask_wtf import FlaskForm


class TestAlertForm(FlaskForm):
    """Only the CSRF token: what to send is fixed."""

    __test__ = False  # not a pytest test class, whatever its name
