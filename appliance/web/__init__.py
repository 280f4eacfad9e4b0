"""The web edge (Flask): console, first-boot setup, DICOMweb, viewer.

PLACEHOLDER of the `web-daemon` branch: the lead's `create_app` replaces this module at merge. It
keeps the signature `appliance-web` calls, and the one route the TLS work needs: `/ca.crt`, the
box's certificate authority, served without login so that a workstation can install it first.
"""

from __future__ import annotations

import flask
from sqlalchemy import Engine

from appliance.audit.events import Recorder
from appliance.certificates import ca_certificate_path
from appliance.config import Settings

CA_MEDIA_TYPE = "application/x-x509-ca-cert"  # what browsers offer to install


def create_app(settings: Settings, engine: Engine, audit: Recorder) -> flask.Flask:
    """The console application for one WSGI worker (its own index engine, the audit recorder)."""
    app = flask.Flask(__name__)
    app.config.update(APPLIANCE_SETTINGS=settings, APPLIANCE_ENGINE=engine, APPLIANCE_AUDIT=audit)

    @app.get("/")
    def home() -> str:
        return f"{settings.current.site_name}: PACS console"

    @app.get("/ca.crt")
    def certificate_authority() -> flask.Response:
        path = ca_certificate_path(settings.current)
        if not path.is_file():
            flask.abort(404)
        return flask.send_file(path, mimetype=CA_MEDIA_TYPE, as_attachment=True, download_name="ca.crt")

    return app
