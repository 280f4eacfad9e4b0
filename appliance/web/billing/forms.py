"""The billing page's period: a month (2008-01) or a quarter (2008-Q1) (GET: it changes nothing)."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import InputRequired, ValidationError

from appliance.billing.report import BadPeriod, period_of
from appliance.web.forms import lazy


class PeriodForm(FlaskForm):
    class Meta:
        csrf = False

    period = StringField(lazy("Month or quarter"), validators=[InputRequired()])

    def validate_period(self, field: Any) -> None:
        try:
            period_of(field.data or "")
        except BadPeriod:
            raise ValidationError(str(lazy("Give a month (2008-01) or a quarter (2008-Q1)."))) from None
