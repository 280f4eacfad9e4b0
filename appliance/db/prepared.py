"""Statements of the ingest's hot path run on the SQLite driver's own connection (issue 14).

Executing a statement, even one built once, costs SQLAlchemy 7 to 10 µs (its cache key, its
execution context, its result object) against 1 to 2 µs for the SQLite driver itself, and indexing
an image runs seven to ten statements, and reads with four more. A `Prepared` statement is compiled
by SQLAlchemy once per dialect and set of value names: the same SQL text, the same bind processors
(dates as SQLAlchemy stores them, and so on), the values of its literal binds, and for a SELECT the
result processors of its columns. On SQLite it then runs on the driver connection under the
SQLAlchemy connection, in the same transaction; an error of the driver is raised as SQLAlchemy
raises it (`IntegrityError` for a uniqueness conflict, and so on). On any other database the
statement is executed by SQLAlchemy, as it always was.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Delete, Insert, Update
from sqlalchemy.sql.selectable import Select

ON_DRIVER = frozenset({"sqlite"})  # the dialects whose statements run on the driver's connection


@dataclass(frozen=True)
class Compiled:
    """A statement as SQLAlchemy compiled it for one dialect and one set of value names."""

    sql: str
    names: tuple[str, ...]  # of the positional parameters, in order
    processors: tuple[Callable[[Any], Any] | None, ...]  # each parameter's bind processor
    literals: Mapping[str, Any]  # the values of the binds the statement holds itself (the 1 of "n + 1")
    readers: tuple[Callable[[Any], Any] | None, ...] = ()  # a SELECT's: each column's result processor


class Prepared:
    """An INSERT, UPDATE, DELETE or SELECT built once, run with a dictionary of values inside a
    transaction."""

    def __init__(self, statement: Insert | Update | Delete | Select[Any]) -> None:
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

    def rows(self, connection: Connection, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run the SELECT with `values` in `connection`'s transaction; its rows, each value as
        SQLAlchemy reads it."""
        if connection.dialect.name not in ON_DRIVER:
            return [tuple(row) for row in connection.execute(self.statement, dict(values))]
        compiled = self.compiled_for(connection.dialect, values)
        found: list[tuple[Any, ...]] = self.executed(connection, values, compiled).fetchall()
        if not any(compiled.readers):
            return found
        return [
            tuple(
                value if reader is None else reader(value) for value, reader in zip(row, compiled.readers, strict=True)
            )
            for row in found
        ]

    def on_driver(self, connection: Connection, values: Mapping[str, Any]) -> int:
        """Run the statement on the driver's connection; the row id of the last insert."""
        compiled = self.compiled_for(connection.dialect, values)
        return int(self.executed(connection, values, compiled).lastrowid or 0)

    def executed(self, connection: Connection, values: Mapping[str, Any], compiled: Compiled) -> Any:
        """The driver's cursor, the statement run with `values`."""
        dialect = connection.dialect
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
            return driver.execute(compiled.sql, parameters)
        except dialect.loaded_dbapi.Error as error:
            raise DBAPIError.instance(compiled.sql, parameters, error, dialect.loaded_dbapi.Error) from error

    def compiled_for(self, dialect: Dialect, values: Mapping[str, Any]) -> Compiled:
        key = (dialect.name, frozenset(values))
        found = self.compiled.get(key)
        if found is None:
            found = self.compiled[key] = compile_statement(self.statement, dialect, list(values))
        return found


def compile_statement(
    statement: Insert | Update | Delete | Select[Any], dialect: Dialect, names: list[str]
) -> Compiled:
    """`statement` compiled for `dialect` with values for `names` (an INSERT sets those columns)."""
    compiled = statement.compile(dialect=dialect, column_keys=sorted(names))  # as SQLAlchemy compiles it
    order = tuple(compiled.positiontup or ())
    binds = compiled.binds
    return Compiled(
        sql=str(compiled),
        names=order,
        processors=tuple(binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in order),
        literals={name: binds[name].effective_value for name in order if name not in names},
        readers=readers_of(statement, dialect),
    )


def readers_of(
    statement: Insert | Update | Delete | Select[Any], dialect: Dialect
) -> tuple[Callable[[Any], Any] | None, ...]:
    """A SELECT's result processors, column by column, as SQLAlchemy reads its rows (a date from
    SQLite's text, and so on); none for other statements."""
    if not isinstance(statement, Select):
        return ()
    return tuple(
        column.type.dialect_impl(dialect).result_processor(dialect, None) for column in statement.selected_columns
    )
