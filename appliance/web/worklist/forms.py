"""The worklist page's choices: a day, a modality, a station, and the modality to see the worklist
as (GET: it changes nothing)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, SelectField
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # WTForms 3.3, newer than its stubs
from wtforms.validators import Optional

from appliance.web.forms import lazy

MODALITIES = ("CT", "MR", "US", "CR", "DX", "MG", "NM", "PT", "XA", "RF", "OT")


class WorklistForm(FlaskForm):
    """`station` and `preview` choices are the day's stations, set by the view before validation."""

    class Meta:
        csrf = False

    day = DateField(lazy("Day"), validators=[Optional()])
    modality = SelectField(
        lazy("Modality"),
        choices=[SelectChoice("", lazy("Every modality")), *[SelectChoice(code, code) for code in MODALITIES]],
        default="",
    )
    station = SelectField(lazy("Station (AE title)"), choices=[], default="")
    preview = SelectField(lazy("See the worklist as"), choices=[], default="")

    def offer_stations(self, stations: list[str]) -> None:
        self.station.choices = [
            SelectChoice("", lazy("Every station")),
            *[SelectChoice(title, title) for title in stations],
        ]
        self.preview.choices = [
            SelectChoice("", lazy("(no preview)")),
            *[SelectChoice(title, title) for title in stations],
        ]
