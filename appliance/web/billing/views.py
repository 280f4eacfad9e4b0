"""The archiving supplements of a period, on a page and as CSV. The classification and the rates
are the domain's (`appliance.billing`); the page words the categories and reasons in French."""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from appliance import practice_time
from appliance.accounts.roles import Permission
from appliance.audit.events import Action, EventId, ParticipantObject, exported_report, patient, patient_number, study
from appliance.billing.report import BillingReport, billing_report, period_of, report_csv
from appliance.web.auth import requires
from appliance.web.billing.forms import PeriodForm
from appliance.web.forms import lazy
from appliance.web.recording import record
from appliance.web.services import services

blueprint = Blueprint("billing", __name__, url_prefix="/billing", template_folder="templates")

WORDS = {
    "radiology": lazy("Conventional radiology"),
    "mammography": lazy("Mammography"),
    "obstetric-ultrasound": lazy("Obstetric ultrasound"),
    "ct": lazy("CT"),
    "mr": lazy("MR"),
    "ultrasound": lazy("Ultrasound"),
    "other": lazy("Other"),
    "configured": lazy("As its procedure code says"),
    "secondary-digitisation": lazy("Mammogram from a secondary digitisation (out of scope)"),
    "computed-radiography-mammogram": lazy("Mammogram on a CR plate: direct digital acquisition to be checked"),
    "not-obstetric-ultrasound": lazy("Ultrasound that is not obstetric (out of scope)"),
    "modality-out-of-scope": lazy("Modality outside the specification's scope"),
}


def words() -> dict[str, str]:
    return {code: str(text) for code, text in WORDS.items()}


def chosen() -> tuple[PeriodForm, BillingReport | None]:
    today = practice_time.today()
    form = PeriodForm(formdata=request.args if request.args else None, data={"period": today.strftime("%Y-%m")})
    if not form.validate():
        return form, None
    return form, billing_report(services().engine, period_of(form.period.data or ""), services().config.billing)


@blueprint.get("")
@requires(Permission.VIEW_BILLING)
def index() -> ResponseReturnValue:
    form, report = chosen()
    if report is not None:
        record_shown(report)
    return render_template("billing/index.html", form=form, report=report, words=words())


@blueprint.get("/export")
@requires(Permission.VIEW_BILLING)
def export() -> ResponseReturnValue:
    form, report = chosen()
    if report is None:
        return render_template("billing/index.html", form=form, report=None, words=words()), 400
    details = (("billable", str(len(report.billable))), ("excluded", str(len(report.excluded))))
    record(EventId.EXPORT, Action.EXECUTE, (exported_report("billing", report.period.name, details),))
    response = Response(report_csv(report, words()), mimetype="text/csv; charset=utf-8")
    name = gettext("supplements") + f"-{report.period.name}.csv"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def record_shown(report: BillingReport) -> None:
    """110103 R with the patients and studies listed (nothing for an empty period)."""
    objects: list[ParticipantObject] = []
    for line in report.lines:
        person = patient(patient_number(line.patient_id, line.issuer), line.patient_name)
        objects += [
            found for found in (person, study(line.study_instance_uid, line.accession_number)) if found not in objects
        ]
    if objects:
        record(EventId.INSTANCES_ACCESSED, Action.READ, tuple(objects))
