"""The web edge: the console staff use every day, as one Flask application served by gunicorn in
`appliance-web` behind nginx (see appliance/daemons/web.py and README.md in this folder).

`create_app` is the table of contents: the services the pages call (the same domain functions as
the DICOM and HL7 edges), the security rules every request passes, the languages, then one
blueprint per feature.
"""

from __future__ import annotations

from flask import Flask
from sqlalchemy import Engine

from appliance.audit.events import Recorder
from appliance.config import Settings
from appliance.web import (
    accounts,
    audit_log,
    auth,
    backup,
    billing,
    dicomweb,
    dose,
    errors,
    forward,
    health,
    home,
    jobs,
    languages,
    maintenance,
    menu,
    messages,
    qc,
    reconciliation,
    retention,
    security,
    setup,
    studies,
    tiers,
    viewer,
    words,
    worklist,
)
from appliance.web.services import Services


def create_app(settings: Settings, engine: Engine, audit: Recorder) -> Flask:
    """The console application for one worker process; `engine` is that process's own."""
    app = Flask(__name__)
    Services(settings, engine, audit).install(app)
    security.configure(app, settings.current)
    languages.configure(app)
    words.configure(app)
    auth.configure(app)
    menu.configure(app)
    errors.configure(app)
    app.register_blueprint(auth.blueprint)  # login, logout, first visit, language
    app.register_blueprint(home.blueprint)  # the home page: what needs doing, the box's health tiles and plots
    app.register_blueprint(health.blueprint)  # a health tile's detail page, the test alert (/health)
    app.register_blueprint(studies.blueprint)  # patient and study search, the study page
    app.register_blueprint(worklist.blueprint)  # the day's worklist per modality, as each modality sees it
    app.register_blueprint(jobs.blueprint)  # maintenance jobs: start, follow, cancel
    app.register_blueprint(reconciliation.blueprint)  # studies without their order, attached by hand (P2)
    app.register_blueprint(forward.blueprint)  # forwarding queues and rules; remote archives searched, studies fetched
    app.register_blueprint(messages.blueprint)  # the HL7 message log, in and out; parked messages retried
    app.register_blueprint(setup.blueprint)  # first-boot setup and the settings pages (/setup)
    app.register_blueprint(accounts.blueprint)  # accounts, substitutes, one's own password (/accounts)
    app.register_blueprint(retention.blueprint)  # studies past their retention date, legal holds, purges (/retention)
    app.register_blueprint(tiers.blueprint)  # storage tiers: usage, move now, bring a study back (/tiers)
    app.register_blueprint(audit_log.blueprint)  # the audit trail: search, verify, export, access report (/audit)
    app.register_blueprint(backup.blueprint)  # the backup: last runs, USB rotation, back up now, key escrow (/backup)
    app.register_blueprint(qc.blueprint)  # the daily quality-control reports: HTML, PDF, sign-off (/qc)
    app.register_blueprint(dicomweb.blueprint)  # DICOMweb for viewers and tools (/dicomweb, /wado)
    app.register_blueprint(viewer.blueprint)  # the built-in viewer, key images, Weasis launch (/viewer)
    app.register_blueprint(maintenance.blueprint)  # the contractor's maintenance tunnel: open for hours, close (H4)
    app.register_blueprint(dose.blueprint)  # the dose register and the NRD survey (/dose)
    app.register_blueprint(billing.blueprint)  # the archiving supplements of a month or quarter (/billing)
    return app
