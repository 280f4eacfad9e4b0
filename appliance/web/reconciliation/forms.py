"""The search for the patient a study belongs to, and the confirmation of the attachment."""

from __future__ import annotations

import re

from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField
from wtforms.validators import Length

from appliance.web.forms import add_error, lazy, text

# An INS-NIR or INS-NIA: 15 characters, digits but for Corsica's department (2A, 2B) in the 7th place.
NATIONAL_IDENTIFIER = re.compile(r"^\d{6}[\dAB]\d{8}$")


SEARCH_FIELDS = ("family", "given", "ipp", "ins")


class PatientSearchForm(FlaskForm):
    """Sent by GET (nothing changes): no CSRF token."""

    class Meta:
        csrf = False

    family = StringField(lazy("Family name"), validators=[Length(max=64)])
    given = StringField(lazy("Given name"), validators=[Length(max=64)])
    ipp = StringField(lazy("IPP"), validators=[Length(max=64)])
    ins = StringField(lazy("INS"), validators=[Length(max=20)])

    def checked(self) -> bool:
        """Valid, with at least one criterion; the errors are put next to their field."""
        if not self.validate():
            return False
        if not any(text(field) for field in (self.family, self.given, self.ipp, self.ins)):
            add_error(self.family, lazy("Type a name, an IPP or an INS."))
            return False
        ins = national_identifier(self)
        if ins and not NATIONAL_IDENTIFIER.match(ins):
            add_error(self.ins, lazy("An INS has 15 digits."))
            return False
        return True


def national_identifier(form: PatientSearchForm) -> str:
    """The INS typed, without spaces, upper case (2A, 2B)."""
    return text(form.ins).replace(" ", "").upper()


class AttachForm(FlaskForm):
    """The confirmation (CSRF): the patient chosen, by IPP and its issuer."""

    patient_id = HiddenField()
    issuer = HiddenField()
