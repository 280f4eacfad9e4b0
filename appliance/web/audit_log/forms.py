"""The audit trail's search (sent by GET: no CSRF token, the address can be kept), the patient's
access report, and the verification button (POST, CSRF). Days are days of the practice's time zone."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, Field, SelectField, StringField, ValidationError
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # WTForms 3.3, newer than its stubs
from wtforms.validators import DataRequired, Length, Optional

from appliance.audit.events import EventId
from appliance.audit.trail import AuditFilter
from appliance.practice_time import day_start
from appliance.web.audit_log.words import EVENT_NAMES
from appliance.web.forms import lazy, text

EVENTS_BY_CODE = {event.code: event for event in EventId}


class SearchForm(FlaskForm):
    class Meta:
        csrf = False

    patient = StringField(lazy("Patient ID (IPP)"), validators=[Optional(), Length(max=64)])
    user = StringField(lazy("User"), validators=[Optional(), Length(max=64)])
    event = SelectField(
        lazy("Event"),
        choices=[
            SelectChoice("", lazy("Any event")),
            *[SelectChoice(event.code, name) for event, name in EVENT_NAMES.items()],
        ],
        default="",
    )
    since = DateField(lazy("Since"), validators=[Optional()])
    until = DateField(lazy("Until"), validators=[Optional()])

    def validate_until(self, field: Field) -> None:
        if field.data and self.since.data and field.data < self.since.data:
            raise ValidationError(lazy("The end comes before the start."))

    def selection(self) -> AuditFilter:
        """What the form asks for: `until` is the whole day (the next day's midnight, excluded)."""
        event = EVENTS_BY_CODE.get(str(self.event.data or ""))
        return AuditFilter(
            patient=text(self.patient),
            user=text(self.user),
            event=event,
            since=day_start(self.since.data),
            until=day_start(self.until.data, next_day=True),
        )

    def keys(self) -> dict[str, str]:
        """The filters as typed (empty ones left out): the query of the audit record, the export's address."""
        values = {
            "patient": text(self.patient),
            "user": text(self.user),
            "event": str(self.event.data or ""),
            "since": f"{self.since.data:%Y-%m-%d}" if self.since.data else "",
            "until": f"{self.until.data:%Y-%m-%d}" if self.until.data else "",
        }
        return {key: value for key, value in values.items() if value}


class AccessReportForm(FlaskForm):
    """One patient's right of access (GDPR art. 15): sent by GET, the download is the answer."""

    class Meta:
        csrf = False

    patient = StringField(
        lazy("Patient ID (IPP)"),
        validators=[DataRequired(lazy("Type the patient's ID (IPP).")), Length(max=64)],
    )


class VerifyForm(FlaskForm):
    """Only the CSRF token: the verification takes no argument."""
