"""The retention forms: a purge and a legal hold each need a reason, written next to the field."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, TextAreaField
from wtforms.validators import DataRequired, Length

from appliance.web.forms import lazy

REASON_NEEDED = lazy("Give the reason: it is kept in the audit trail.")


class PurgeForm(FlaskForm):
    reason = TextAreaField(lazy("Reason for the deletion"), validators=[DataRequired(REASON_NEEDED), Length(max=500)])
    confirmed = BooleanField(
        lazy("I confirm the deletion of this study's images and index entries"),
        validators=[DataRequired(lazy("Tick the box to confirm the deletion."))],
    )


class FreezeForm(FlaskForm):
    reason = TextAreaField(lazy("Reason for the legal hold"), validators=[DataRequired(REASON_NEEDED), Length(max=500)])
