"""The dose register's page and the NRD survey's CSV. The survey is the domain's
(`appliance.dose.survey`); this page only chooses, draws and records who saw which patients."""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import get_locale, gettext

from appliance import practice_time
from appliance.accounts.roles import Permission
from appliance.audit.events import Action, EventId, ParticipantObject, exported_report, patient, patient_number, study
from appliance.config.reporting import ExamType
from appliance.dose.listing import NotRead, not_read
from appliance.dose.survey import QUANTITIES, Measurement, Survey, survey, survey_csv
from appliance.web.auth import requires
from appliance.web.dose.forms import SurveyForm, default_period
from appliance.web.dose.plots import HistogramTexts, histogram
from appliance.web.health.plots import Plot
from appliance.web.languages import number
from appliance.web.recording import record
from appliance.web.services import services

blueprint = Blueprint("dose", __name__, url_prefix="/dose", template_folder="templates")

QUANTITY_NAMES = {
    "ctdi_vol_mgy": "CTDIvol (IDSV)",
    "dlp_mgy_cm": "DLP (PDL)",
    "dap_mgy_cm2": "DAP (PDS)",
    "agd_mgy": "AGD (DMG)",
}


def chosen() -> tuple[SurveyForm, ExamType | None]:
    """The form read from the query string (the year so far by default) and its exam type when valid."""
    exam_types = services().config.dose.exam_types
    form = SurveyForm(formdata=request.args if request.args else None, data=default_period(practice_time.today()))
    form.offer(exam_types)
    if not request.args and exam_types:
        form.exam_type.data = exam_types[0].code
    if not form.validate():
        return form, None
    return form, services().config.dose.exam_type(form.exam_type.data or "")


@blueprint.get("")
@requires(Permission.VIEW_DOSE)
def index() -> ResponseReturnValue:
    form, exam_type = chosen()
    if exam_type is None:
        return render_template("dose/index.html", form=form, found=None, plots=[], missing=[])
    found = survey(services().engine, exam_type, form.first.data, form.last.data)  # type: ignore[arg-type]
    missing = not_read(services().engine, form.first.data, form.last.data)  # type: ignore[arg-type]
    above = found.above()
    record_shown(above, missing)
    return render_template(
        "dose/index.html", form=form, found=found, plots=plots_of(found), above=above, missing=missing,
        quantity_names=QUANTITY_NAMES,
    )  # fmt: skip


@blueprint.get("/export")
@requires(Permission.VIEW_DOSE)
def export() -> ResponseReturnValue:
    form, exam_type = chosen()
    if exam_type is None or form.first.data is None or form.last.data is None:
        return render_template("dose/index.html", form=form, found=None, plots=[], missing=[]), 400
    found = survey(services().engine, exam_type, form.first.data, form.last.data)
    period = f"{form.first.data.isoformat()}/{form.last.data.isoformat()}"
    details = (("exam-type", exam_type.code), ("rows", str(len(found.measurements))))
    record(EventId.EXPORT, Action.EXECUTE, (exported_report("dose-survey", period, details),))
    response = Response(survey_csv(found), mimetype="text/csv; charset=utf-8")
    name = f"nrd-{exam_type.code}-{form.first.data.isoformat()}-{form.last.data.isoformat()}.csv"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def plots_of(found: Survey) -> list[Plot]:
    """One histogram per quantity of the exam type, with its reference level."""
    language = str(get_locale() or "fr")
    plots = []
    for summary in found.summaries:
        values = [value for row in found.measurements if (value := row.values.get(summary.quantity)) is not None]
        name = f"{QUANTITY_NAMES[summary.quantity]} ({QUANTITIES[summary.quantity][2]})"
        texts = HistogramTexts(
            title=gettext("Distribution of %(quantity)s", quantity=name),
            summary=gettext("%(count)d value(s); the line is the national reference level.", count=len(values)),
            value_column=name,
            count_column=gettext("Exams"),
            reference=gettext("NRD %(level)s", level=number(summary.reference))
            if summary.reference is not None
            else "",
            bar_label=gettext("{low} to {high}: {count}"),
        )
        plots.append(
            histogram(f"plot-{summary.quantity.replace('_', '-')}", values, summary.reference, texts, language)
        )
    return plots


def record_shown(above: list[Measurement], missing: list[NotRead]) -> None:
    """110103 R with the patients and studies the page names (nothing when it names none)."""
    rows: list[Measurement | NotRead] = [*above, *missing]
    shown = [
        (row.patient_id, row.issuer, row.patient_name, row.study_instance_uid, row.accession_number) for row in rows
    ]
    if not shown:
        return
    objects: list[ParticipantObject] = []
    for patient_id, issuer, name, study_uid, accession in shown:
        person = patient(patient_number(patient_id, issuer), name)
        objects += [found for found in (person, study(study_uid, accession)) if found not in objects]
    record(EventId.INSTANCES_ACCESSED, Action.READ, tuple(objects))
