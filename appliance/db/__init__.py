"""The index database: SQLAlchemy Core engine and Alembic migrations."""

from appliance.db.engine import create_index_engine, upgrade_schema

__all__ = ["create_index_engine", "upgrade_schema"]
