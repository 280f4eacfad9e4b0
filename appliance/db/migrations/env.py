"""Alembic environment: migrations run on the engine handed over by `upgrade_schema`."""

from alembic import context

import appliance.archive.tables
import appliance.hl7.tables
import appliance.patients.tables
import appliance.worklist.tables  # noqa: F401
from appliance.db.metadata import metadata

engine = context.config.attributes["engine"]

with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    context.run_migrations()
