"""The study search form: sent by GET (a search changes nothing, so it carries no CSRF token and its
address can be kept as a bookmark), checked field by field, errors next to the field."""

from __future__ import annotations

import re
from typing import Any

from flask_wtf import FlaskForm
from wtforms import DateField, Field, SelectField, StringField, ValidationError
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # WTForms 3.3, newer than its stubs
from wtforms.validators import Length, Optional

from appliance.web.forms import lazy

# Modalities a practice's studies usually hold (PS3.3 C.7.3.1.1.1 defined terms).
MODALITIES = ("CT", "MR", "US", "CR", "DX", "MG", "NM", "PT", "XA", "RF", "OT", "SR", "DOC")
PRESETS = ("today", "yesterday", "week")
# An INS (NIR or NIA): 15 characters, the department may be 2A or 2B (Corsica).
INS = re.compile(r"^[0-9]{6}[0-9AB][0-9]{8}$")


def national_identifier_shape(_form: FlaskForm, field: Field) -> None:
    """An INS is 15 characters (the number and its key); spaces typed between the groups are ignored."""
    typed = compact(field.data)
    if typed and not INS.match(typed):
        raise ValidationError(lazy("An INS has 15 characters: 13 digits and the 2-digit key."))


def compact(value: Any) -> str:
    return "".join(str(value or "").split()).upper()


class SearchForm(FlaskForm):
    class Meta:
        csrf = False

    patient_name = StringField(lazy("Patient name"), validators=[Length(max=100)])
    patient_id = StringField(lazy("Patient ID (IPP)"), validators=[Length(max=64)])
    national_identifier = StringField(lazy("INS"), validators=[national_identifier_shape])
    accession_number = StringField(lazy("Accession number"), validators=[Length(max=16)])
    preset = SelectField(
        lazy("Period"),
        choices=[
            SelectChoice("", lazy("Any date")),
            SelectChoice("today", lazy("Today")),
            SelectChoice("yesterday", lazy("Yesterday")),
            SelectChoice("week", lazy("Last 7 days")),
        ],
        default="",
    )
    first_day = DateField(lazy("From"), validators=[Optional()])
    last_day = DateField(lazy("To"), validators=[Optional()])
    modality = SelectField(
        lazy("Modality"),
        choices=[SelectChoice("", lazy("Any modality")), *[SelectChoice(code, code) for code in MODALITIES]],
        default="",
    )

    def validate_last_day(self, field: Field) -> None:
        if field.data and self.first_day.data and field.data < self.first_day.data:
            raise ValidationError(lazy("The end of the period comes before its start."))
