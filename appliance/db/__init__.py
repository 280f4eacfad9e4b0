"""The index database: SQLAlchemy Core engine and Alembic migrations."""

from appliance.db.engine import as_utc, create_index_engine, upgrade_schema

__all__ = ["as_utc", "create_index_engine", "upgrade_schema"]
