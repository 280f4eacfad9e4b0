"""One form per setup step (Flask-WTF: each carries its CSRF token). The forms check only what a
browser can get wrong (a number that is no number); everything else is the configuration schema's
to say, through the writer, in the same words as `appliance config check`."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import InputRequired
from wtforms.widgets import CheckboxInput, ListWidget

from appliance.web.forms import choices, lazy

RIGHTS = (
    ("store", lazy("send images (store)")),
    ("query", lazy("search the archive (query)")),
    ("retrieve", lazy("retrieve images (retrieve)")),
    ("worklist", lazy("worklist and exam progress (worklist, MPPS)")),
)


class Checkboxes(SelectMultipleField):
    """Several choices, one checkbox each (usable on a tablet, unlike a multiple select)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class PracticeForm(FlaskForm):
    site_name = StringField(lazy("Name of the practice"))


class ArchiveForm(FlaskForm):
    ae_title = StringField(lazy("AE title of the archive"))
    worklist_ae_title = StringField(lazy("AE title of the worklist"))


class ModalityForm(FlaskForm):
    ae_title = StringField(lazy("AE title"))
    host = StringField(lazy("Address (IP or host name)"))
    port = IntegerField(lazy("DICOM port"), validators=[InputRequired()])
    rights = Checkboxes(lazy("What it may do"), choices=choices(list(RIGHTS)))
    description = StringField(lazy("Description (room, brand, model)"))
    model = SelectField(lazy("Worklist: model of the modality"), choices=[])


class RisForm(FlaskForm):
    accepted_sending_facilities = StringField(lazy("Accepted sending facilities (MSH-4)"))
    patient_id_authority = StringField(lazy("Authority of the practice's patient IDs (IPP)"))
    ris_host = StringField(lazy("Address of the RIS (empty: send nothing)"))
    ris_port = IntegerField(lazy("Port of the RIS"), validators=[InputRequired()])
    ris_application = StringField(lazy("Application name of the RIS (MSH-5)"))
    ris_facility = StringField(lazy("Facility name of the RIS (MSH-6)"))


class MailForm(FlaskForm):
    relay_host = StringField(lazy("Mail relay (empty: no mail)"))
    relay_port = IntegerField(lazy("Port of the relay"), validators=[InputRequired()])
    sender = StringField(lazy("Sender address"))
    recipients = TextAreaField(lazy("Recipients, one address per line"))


class BackupForm(FlaskForm):
    repository = StringField(lazy("Backup repository (a USB disk path or ssh:// to a NAS)"))
    time = StringField(lazy("Time of the nightly backup (HH:MM)"))


def listed(text: str) -> list[str]:
    """The entries of a list typed as lines or separated by commas, blanks left out."""
    return [entry.strip() for line in text.splitlines() for entry in line.split(",") if entry.strip()]
