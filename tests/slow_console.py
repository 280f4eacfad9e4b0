"""`appliance-web` exactly as shipped, with one more route for the drain test: `/slow?seconds=N`
logs that it started, sleeps, then answers "finished"."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import flask
from sqlalchemy import Engine

from appliance import web as console
from appliance.audit.events import Recorder
from appliance.config import Settings
from appliance.daemons import web
from appliance.web.auth import public


def create_app_with_a_slow_route(settings: Settings, engine: Engine, audit: Recorder) -> flask.Flask:
    app = console.create_app(settings, engine, audit)

    @app.get("/slow")
    @public
    def slow() -> str:
        logging.getLogger(__name__).warning("slow request started")
        time.sleep(float(flask.request.args.get("seconds", "3")))
        return "finished"

    return app


def main(argv: Sequence[str] | None = None) -> int:
    web.create_app = create_app_with_a_slow_route
    return web.main(argv)
