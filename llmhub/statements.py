"""Plain SQL for the few statements every API request runs, read and written exactly as the ORM would.

Composing a query with the ORM (filters, joins, compiling) cost 0.2 to 1.2 ms of CPU per statement
on a 2-core machine, running it 0.02 ms (issue 16). So the hot path writes its SQL by hand, with the
table and column names from the models' _meta quoted by the connection's ops, and goes through the
ORM's own converters and adapters: a value read comes back as the ORM returns it (Decimal from
SQLite's floats, aware datetimes, JSON) and a value written is stored as the ORM stores it. Both
SQLite and PostgreSQL. Everything off the hot path uses the ORM.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Field, Model

M = TypeVar("M", bound=Model)
Converter = Callable[[Any, Any, Any], Any]


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


def table(model: type[Model]) -> str:
    return _table(model, connection.vendor)


def column(model: type[Model], name: str) -> str:
    """A field's column, by the field's name or attname ("team" or "team_id")."""
    return _column(model, name, connection.vendor)


def columns(model: type[Model], alias: str = "") -> str:
    """Every column of the model, in the order `load()` reads them (as `alias`."column" if given)."""
    return _columns(model, alias, connection.vendor)


# The names, quoted once per database vendor (the SQL of each request is made of them).


@functools.cache
def _table(model: type[Model], vendor: str) -> str:
    return quote(model._meta.db_table)


@functools.cache
def _column(model: type[Model], name: str, vendor: str) -> str:
    return quote(model._meta.get_field(name).column)


@functools.cache
def _columns(model: type[Model], alias: str, vendor: str) -> str:
    prefix = f"{quote(alias)}." if alias else ""
    return ", ".join(prefix + quote(field.column) for field in model._meta.concrete_fields)


def load(model: type[M], row: Sequence, start: int = 0) -> M:
    """The instance whose `columns()` begin at `row[start]`, converted as the ORM converts them."""
    fields = model._meta.concrete_fields
    values = list(row[start : start + len(fields)])
    ops = connection.ops
    for index, col, converters in _converting(model, connection.vendor):
        for converter in converters:
            convert = getattr(ops, converter) if isinstance(converter, str) else converter
            values[index] = convert(values[index], col, connection)
    return model.from_db(connection.alias, None, values)


@functools.cache
def _converting(model: type[Model], vendor: str) -> list[tuple[int, Any, list[Converter | str]]]:
    """Each column with converters: (its index, its Col, the backend's then the field's converters).
    A converter of the backend's ops is kept by name: each thread has its own connection, and ops."""
    found = []
    for index, field in enumerate(model._meta.concrete_fields):
        col = field.get_col(model._meta.db_table)
        converters = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        named = [_name(converter) for converter in converters]
        if named:
            found.append((index, col, named))
    return found


def _name(converter: Converter) -> Converter | str:
    bound_to = getattr(converter, "__self__", None)
    return converter.__name__ if bound_to is connection.ops else converter


def adapt(model: type[Model], name: str, value: Any) -> Any:
    """A value for a field's column as the ORM writes it (Decimal, datetime and JSON adapted)."""
    field: Field = model._meta.get_field(name)
    return field.get_db_prep_save(value, connection=connection)


def update(
    model: type[Model], pk: Any, values: dict[str, Any], where: str = "", params: Iterable = ()
) -> int:
    """UPDATE these fields (by name or attname) of the row `pk`, and only while `where` (plain SQL
    ANDed to the key, with `params`) holds: the number of rows changed, 0 or 1."""
    sets = ", ".join(f"{column(model, name)} = %s" for name in values)
    sql = f"UPDATE {table(model)} SET {sets} WHERE {column(model, model._meta.pk.name)} = %s"
    if where:
        sql += f" AND ({where})"
    arguments = [adapt(model, name, value) for name, value in values.items()]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*arguments, pk, *params])
        return cursor.rowcount
