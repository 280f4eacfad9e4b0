"""What the pages work with, bound once per application: the configuration in force, the index and
the audit trail. Pages reach them through `services()`, never through globals of their own."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app
from sqlalchemy import Engine

from appliance.audit.events import AuditEvent, Recorder
from appliance.config import Config, Settings

EXTENSION = "appliance"
APPLICATION_NAME = "appliance-web"  # how the console names itself in audit records


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: Engine
    audit: Recorder

    @property
    def config(self) -> Config:
        return self.settings.current

    def record(self, event: AuditEvent) -> None:
        self.audit.record(event)

    def install(self, app: Flask) -> None:
        app.extensions[EXTENSION] = self


def services() -> Services:
    found: Services = current_app.extensions[EXTENSION]
    return found
