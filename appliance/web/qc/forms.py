"""The sign-off form: the radiologist says the report was read, with an optional comment."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, TextAreaField
from wtforms.validators import DataRequired, Length

from appliance.web.forms import lazy


class SignForm(FlaskForm):
    read = BooleanField(
        lazy("I have read this report and its findings"),
        validators=[DataRequired(lazy("Tick this box to sign the report off."))],
    )
    comment = TextAreaField(lazy("Comment (optional)"), validators=[Length(max=1000)])
