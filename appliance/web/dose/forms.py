"""The dose page's choices: an exam type of the survey and a period (GET: it changes nothing)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from flask_wtf import FlaskForm
from wtforms import DateField, SelectField
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # WTForms 3.3, newer than its stubs
from wtforms.validators import InputRequired, ValidationError

from appliance.config.reporting import ExamType
from appliance.web.forms import lazy


class SurveyForm(FlaskForm):
    """`exam_type`'s choices are the configured exam types, set by the view before validation."""

    class Meta:
        csrf = False

    exam_type = SelectField(lazy("Exam type"), choices=[])
    first = DateField(lazy("From"), validators=[InputRequired()])
    last = DateField(lazy("To"), validators=[InputRequired()])

    def offer(self, exam_types: Sequence[ExamType]) -> None:
        self.exam_type.choices = [SelectChoice(found.code, found.label) for found in exam_types]

    def validate_last(self, field: Any) -> None:
        if self.first.data and field.data and field.data < self.first.data:
            raise ValidationError(str(lazy("The end of the period is before its start.")))


def default_period(today: date) -> dict[str, date]:
    """The year so far (the survey is yearly)."""
    return {"first": date(today.year, 1, 1), "last": today}
