"""A kept report as HTML (the console's fragment, a standalone document), as a PDF for an inspector
(WeasyPrint, A4), and as the mail of the day. Rendered on demand from the stored facts: what is
kept is the facts and their SHA-256, so the HTML and the PDF of a report say the same thing today
and in twenty years (the look may change with the software, the facts cannot)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from appliance.practice_time import written
from appliance.qc.report import Status
from appliance.qc.store import StoredReport

HERE = Path(__file__).parent
STYLESHEET = HERE / "report.css"


def day(value: date) -> str:
    return f"{value:%d/%m/%Y}"


def environment() -> Environment:
    found = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    found.filters["moment"] = written
    found.filters["day"] = day
    return found


ENVIRONMENT = environment()


def audit_head(stored: StoredReport) -> tuple[int, str] | None:
    report = stored.report
    last_hash = report.number("audit", "last_hash")
    return (int(report.number("audit", "last_seq", 0)), str(last_hash)) if last_hash else None


def fragment(stored: StoredReport) -> Markup:
    """The report as an <article>, for the console's page (styled by report.css)."""
    template = ENVIRONMENT.get_template("fragment.html")  # autoescaped: the values are escaped in it
    return Markup(template.render(report=stored.report, stored=stored, audit_head=audit_head(stored)))


def document(stored: StoredReport, stylesheet: str = "") -> str:
    """The report as a whole HTML document, linking `stylesheet` (a URL) when given."""
    template = ENVIRONMENT.get_template("document.html")
    return template.render(report=stored.report, stored=stored, audit_head=audit_head(stored), stylesheet=stylesheet)


def pdf(stored: StoredReport) -> bytes:
    """The report as an A4 PDF (WeasyPrint, the stylesheet beside this module)."""
    from weasyprint import CSS, HTML  # type: ignore[import-untyped]  # imported here: a second to load, only the PDF needs it

    rendered: bytes = HTML(string=document(stored), base_url=str(HERE)).write_pdf(
        stylesheets=[CSS(filename=str(STYLESHEET))]
    )
    return rendered


def mail_subject(stored: StoredReport) -> str:
    return f"Contrôle qualité du {day(stored.day)} : {stored.status.word}"


def mail_body(stored: StoredReport, console_url: str = "") -> str:
    """The day's mail: each check's result, and the two fingerprints to keep outside the box. No
    patient data (damaged files are named in the console's report only)."""
    report = stored.report
    lines = [f"Contrôle qualité du système d'archivage « {report.site_name} », rapport du {day(report.day)} : "
             f"{report.status.word}.", ""]  # fmt: skip
    for section in report.sections:
        mark = {Status.FAILURE: "ÉCHEC", Status.WARNING: "à surveiller"}.get(section.status, section.status.word)
        lines.append(f"- {section.title} : {mark}. {section.summary}")
    head = audit_head(stored)
    lines += ["", "À conserver (preuve que ni ce rapport ni le journal d'audit ne seront réécrits) :",
              f"  Empreinte SHA-256 du rapport n° {stored.id} : {stored.facts_sha256}"]  # fmt: skip
    if head is not None:
        lines.append(f"  Tête du journal d'audit : enregistrement n° {head[0]}, SHA-256 {head[1]}")
    lines += ["", "Le rapport complet (HTML, PDF) est dans la console, rubrique Contrôle qualité, "
              "où le radiologue responsable le vise."]  # fmt: skip
    if console_url:
        lines.append(console_url)
    return "\n".join(lines) + "\n"
