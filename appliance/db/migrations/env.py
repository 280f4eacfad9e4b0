"""Alembic environment: migrations run on the engine handed over by `upgrade_schema`."""

from alembic import context

from appliance.db.schema import metadata

engine = context.config.attributes["engine"]

with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    context.run_migrations()
