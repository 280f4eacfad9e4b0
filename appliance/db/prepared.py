"""Statements of the ingest's hot path run on the SQLite driver's own connection (issue 14).

Executing a statement, even one built once, costs SQLAlchemy 7 to 10 µs (its cache key, its
execution context, its result object) against 1 to 2 µs for the SQLite driver itself, and indexing
an image runs seven to ten statements. A `Prepared` statement is compiled by SQLAlchemy once per
dialect and set of value names: the same SQL text, the same bind processors (dates as SQLAlchemy
stores them, and so on), the values of its literal binds. On SQLite it then runs on the driver
connection under the SQLAlchemy connection, in the same transaction; an error of the driver is
raised as SQLAlchemy raises it (`IntegrityError` for a uniqueness conflict, and so on). On any other
database the statement is executed by SQLAlchemy, as it always was.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Delete, Insert, Update

ON_DRIVER = frozenset({"sqlite"})  # the dialects whose statements run on the driver's connection


@dataclass(frozen=True)
class Compiled:
    """A statement as SQLAlchemy compiled it for one dialect and one set of value names."""

    sql: str
    names: tuple[str, ...]  # of the positional parameters, in order
    processors: tuple[Callable[[Any], Any] | None, ...]  # each parameter's bind processor
    literals: Mapping[str, Any]  # the values of the binds the statement holds itself (the 1 of "n + 1")


class Prepared:
    """An INSERT, UPDATE or DELETE built once, run with a dictionary of values inside a transaction."""

    def __init__(self, statement: Insert | Update | Delete) -> None:
        self.statement = statement
        self.compiled: dict[tuple[str, frozenset[str]], Compiled] = {}

    def run(self, connection: Connection, values: Mapping[str, Any]) -> None:
        """Run the statement with `values` in `connection`'s transaction."""
        if connection.dialect.name in ON_DRIVER:
            self.on_driver(connection, values)
        else:
            connection.execute(self.statement, dict(values))

    def insert(self, connection: Connection, values: Mapping[str, Any]) -> int:
        """Run the INSERT with `values` in `connection`'s transaction; the new row's id."""
        if connection.dialect.name in ON_DRIVER:
            return self.on_driver(connection, values)
        key = connection.execute(self.statement, dict(values)).inserted_primary_key
        assert key is not None
        return int(key[0])

    def on_driver(self, connection: Connection, values: Mapping[str, Any]) -> int:
        """Run the statement on the driver's connection; the row id of the last insert."""
        dialect = connection.dialect
        compiled = self.compiled_for(dialect, values)
        parameters = [
            processor(value) if processor is not None else value
            for value, processor in zip(
                (values[name] if name in values else compiled.literals[name] for name in compiled.names),
                compiled.processors,
                strict=True,
            )
        ]
        if not connection.in_transaction():
            connection.begin()  # as SQLAlchemy's own execution begins one: the caller's commit commits it
        driver = connection.connection.driver_connection
        assert driver is not None
        try:
            return int(driver.execute(compiled.sql, parameters).lastrowid or 0)
        except dialect.loaded_dbapi.Error as error:
            raise DBAPIError.instance(compiled.sql, parameters, error, dialect.loaded_dbapi.Error) from error

    def compiled_for(self, dialect: Dialect, values: Mapping[str, Any]) -> Compiled:
        key = (dialect.name, frozenset(values))
        found = self.compiled.get(key)
        if found is None:
            found = self.compiled[key] = compile_statement(self.statement, dialect, list(values))
        return found


def compile_statement(statement: Insert | Update | Delete, dialect: Dialect, names: list[str]) -> Compiled:
    """`statement` compiled for `dialect` with values for `names` (an INSERT sets those columns)."""
    compiled = statement.compile(dialect=dialect, column_keys=sorted(names))  # as SQLAlchemy compiles it
    order = tuple(compiled.positiontup or ())
    binds = compiled.binds
    return Compiled(
        sql=str(compiled),
        names=order,
        processors=tuple(binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in order),
        literals={name: binds[name].effective_value for name in order if name not in names},
    )
