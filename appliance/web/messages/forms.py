"""The message log's filters (sent by GET: no CSRF token) and the retry button (POST, CSRF)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, SelectChoice, SelectField, StringField  # type: ignore[attr-defined]  # 3.3, not in the stubs yet
from wtforms.validators import Length, Optional

from appliance import inbox, outbox
from appliance.web.forms import add_error, lazy

RECEIVED = "in"
SENT = "out"
STATUS_WORDS = {
    inbox.RECEIVED: lazy("received, not applied yet"),
    inbox.APPLIED: lazy("applied"),
    inbox.REFUSED: lazy("refused"),
    inbox.FAILED: lazy("failed"),
    outbox.PENDING: lazy("waiting"),
    outbox.DELIVERED: lazy("delivered"),
    outbox.PARKED: lazy("set aside (refused)"),
}
STATUSES = {RECEIVED: inbox.STATUSES, SENT: (outbox.PENDING, outbox.DELIVERED, outbox.PARKED)}


class FilterForm(FlaskForm):
    class Meta:
        csrf = False

    direction = SelectField(
        lazy("Messages"),
        choices=[SelectChoice(RECEIVED, lazy("Received from the RIS")), SelectChoice(SENT, lazy("Sent"))],
        default=RECEIVED,
    )
    message_type = StringField(lazy("Type"), validators=[Optional(), Length(max=32)])
    status = SelectField(lazy("Status"), validate_choice=False, default="")
    since = DateField(lazy("Since"), validators=[Optional()])
    until = DateField(lazy("Until"), validators=[Optional()])

    def checked(self) -> bool:
        """Valid: a known direction, a status of that direction, a date range in order."""
        self.status.choices = [
            SelectChoice("", lazy("Any")),
            *[SelectChoice(status, STATUS_WORDS[status]) for status in self.statuses()],
        ]
        if not self.validate():
            return False
        if self.status.data and self.status.data not in self.statuses():
            add_error(self.status, lazy("Choose one of the statuses listed."))
            return False
        if self.since.data and self.until.data and self.until.data < self.since.data:
            add_error(self.until, lazy("The end comes before the start."))
            return False
        return True

    def statuses(self) -> tuple[str, ...]:
        return STATUSES.get(str(self.direction.data), STATUSES[RECEIVED])


class RetryForm(FlaskForm):
    """Only the CSRF token: the message is in the address."""
