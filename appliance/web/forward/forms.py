"""The search of a remote archive (POST, CSRF), the forwarding rules' form, and the buttons (CSRF only)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import Length, Optional, Regexp

from appliance.web.forms import add_error, lazy, text


class SearchForm(FlaskForm):
    archive = SelectField(lazy("Remote archive"), validate_choice=True)
    patient_id = StringField(lazy("Patient ID"), validators=[Optional(), Length(max=64)])
    patient_name = StringField(lazy("Patient name"), validators=[Optional(), Length(max=64)])
    since = DateField(lazy("Studies since"), validators=[Optional()])
    modality = StringField(
        lazy("Modality"),
        validators=[Optional(), Length(max=16), Regexp(r"^[A-Za-z]{2,16}$", message=lazy("A modality code: CT, MR…"))],
    )

    def checked(self) -> bool:
        """Valid, and with a patient to look for (an open search of a whole archive is refused)."""
        if not self.validate():
            return False
        if not text(self.patient_id) and not text(self.patient_name):
            add_error(self.patient_id, lazy("Give the patient's ID or name."))
            return False
        return True

    def keys(self) -> dict[str, str]:
        """The study-level C-FIND keys (a name is matched from its beginning, as typed)."""
        keys = {"PatientID": text(self.patient_id), "ModalitiesInStudy": text(self.modality).upper()}
        name = text(self.patient_name)
        if name:
            keys["PatientName"] = name.upper().replace(" ", "^") + "*"
        if self.since.data:
            keys["StudyDate"] = self.since.data.strftime("%Y%m%d") + "-"
        return {key: value for key, value in keys.items() if value}


class FetchForm(FlaskForm):
    study_instance_uid = HiddenField(validators=[Length(min=1, max=64)])


class ButtonForm(FlaskForm):
    """Only the CSRF token: what it acts on is in the address."""


class RuleForm(FlaskForm):
    """A forwarding rule (`forward.rules[]`): the form checks nothing the configuration schema does
    not say better; its refusals come back next to the field, in the words of `appliance config check`."""

    name = StringField(lazy("Name of the rule"))
    destination = SelectField(lazy("Destination"), choices=[], validate_choice=False)
    enabled = BooleanField(lazy("In force"), default=True)
    calling_ae_titles = StringField(lazy("Senders (calling AE titles)"))
    modalities = StringField(lazy("Modalities"))
    sop_classes = StringField(lazy("SOP classes (UIDs)"))
    study_descriptions = TextAreaField(lazy("Study descriptions, one per line"))
    original = HiddenField()  # the name of the rule edited, as the page showed it


class RemoveRuleForm(FlaskForm):
    original = HiddenField(validators=[Length(min=1, max=64)])
