"""Plain SQL for the few statements every API request runs, read and written exactly as the ORM would.

Composing a query with the ORM (filters, joins, compiling) cost 0.2 to 1.2 ms of CPU per statement
on a 2-core machine, running it 0.02 ms (issue 16). So the hot path writes its SQL by hand, with the
table and column names from the models' _meta quoted by the connection's ops, and goes through the
ORM's own converters and adapters: a value read comes back as the ORM returns it (Decimal from
SQLite's floats, aware datetimes, JSON) and a value written is stored as the ORM stores it. Both
SQLite and PostgreSQL. Everything off the hot path uses the ORM.

Each statement's text is composed once per process (per database engine), and the values are adapted
with the thread's connection itself (`db()`): `django.db.connection` is a proxy that looks the
connection up again at every attribute, 2 to 3 µs each, and a row's values make dozens of them.
The instances read and written are made by llmhub/instances.py, the values written prepared by
llmhub/values.py.
"""

from __future__ import annotations

import functools
import operator
from asyncio import _get_running_loop
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from django.conf import settings
from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model

from llmhub import conf, hops
from llmhub.sqlite.base import qmark
from llmhub.values import Prepare, preparer

M = TypeVar("M", bound=Model)
Converter = Callable[[Any, Any, Any], Any]


def db() -> BaseDatabaseWrapper:
    """This thread's connection itself (not the proxy `django.db.connection`): look it up once per
    statement, or once for several, and use it for everything that statement needs. In a hop
    (llmhub/hops.py) it is looked up once for the whole hop: nothing replaces a thread's connection
    object meanwhile (its connection to the database may close and open again, the object stays).
    Not with an event loop running in the thread: there Django's look-up depends on the task."""
    if hops.current.within and _get_running_loop() is None:
        wrapper = hops.current.wrapper
        if wrapper is None:
            wrapper = hops.current.wrapper = connections[DEFAULT_DB_ALIAS]
        return wrapper
    return connections[DEFAULT_DB_ALIAS]


# Running a statement. Django's cursor spends ~12 µs of CPU around each one (three async-safety
# checks, the settings read for query logging, its cursor wrapper and execute wrappers, SQLite's
# placeholder conversion), 4 to 5 times the statement itself; a request runs ~14. So the hot path
# runs its statements on the DB-API cursor of the thread's connection, keeping what matters of
# Django's path: errors become django.db's (and our SQLite backend notes a failed connection to
# reopen it), a transaction marked for rollback refuses statements (TransactionManagementError).
# Django's thread-sharing check has nothing to find: `connections[...]` is this thread's own.
# Everything else is Django's cursor's job, so the statement goes through it instead when:
# - the connection is not open yet, or its health check closed it (Django opens it);
# - queries are logged (DEBUG, CaptureQueriesContext, assertNumQueries) or execute wrappers are
#   installed (connection.execute_wrapper(), bench/api_cpu.py's listing): nothing is hidden from them;
# - an event loop runs in this thread: Django's cursor raises SynchronousOnlyOperation.

fetchone = operator.methodcaller("fetchone")
fetchall = operator.methodcaller("fetchall")
rowcount = operator.attrgetter("rowcount")
lastrowid = operator.attrgetter("lastrowid")


def run(
    sql: str,
    params: Sequence = (),
    read: Callable[[Any], Any] = rowcount,
    wrapper: BaseDatabaseWrapper | None = None,
) -> Any:
    """Run one statement (Django's "%s" placeholders, a sequence of parameters) on this thread's
    connection (`wrapper`: the caller's `db()`, when it has it) and return `read(cursor)`:
    fetchone, fetchall, rowcount (the default) or lastrowid."""
    if wrapper is None:
        wrapper = db()
    wrapper.close_if_health_check_failed()  # when due (PostgreSQL's kept connections: llmhub/postgresql)
    if (
        wrapper.connection is None
        or wrapper.force_debug_cursor
        or _debug()
        or wrapper.execute_wrappers
        or _get_running_loop() is not None
    ):
        with wrapper.cursor() as cursor:
            cursor.execute(sql, params)
            return read(cursor)
    wrapper.validate_no_broken_transaction()
    with wrapper.wrap_database_errors:
        if wrapper.vendor == "sqlite":
            cursor = wrapper.connection.cursor()
            try:
                cursor.execute(qmark(sql), params)
                return read(cursor)
            finally:
                cursor.close()
        cursor = _bound_cursor(wrapper)
        cursor.execute(sql, params)  # prepared as the connection's prepare_threshold says
        return read(cursor)


@functools.cache
def _debug() -> bool:
    """settings.DEBUG, read once (each read of a setting costs ~1 µs, and a request runs ~14
    statements); read again when a test changes it."""
    return settings.DEBUG


def _setting_changed(setting: str, **kwargs: Any) -> None:
    if setting == "DEBUG":
        _debug.cache_clear()


setting_changed.connect(_setting_changed, dispatch_uid="llmhub.statements")


# PostgreSQL. Django's cursors bind the values into the SQL text in Python (psycopg's ClientCursor:
# each value quoted and the text rebuilt, and the server parses and plans it all again): ~170 µs of
# CPU for the settlement's UPDATE on the 2-core VM. The hot path's statements are sent with their
# values apart instead (server-side binding), and prepared once per connection while connections are
# kept (the prepare_threshold llmhub/settings.py sets then): only the values travel, ~55 µs. Only our
# own SQL, written for it, is bound so; the ORM keeps Django's client-side binding.


def _bound_cursor(wrapper: BaseDatabaseWrapper) -> Any:
    """The connection's psycopg cursor with server-side binding, reading timestamps in the wrapper's
    time zone as Django's own cursors do (see its create_cursor). One is kept per connection and
    used for each statement in turn (a statement's execute() discards the previous one's result): a
    new cursor cost ~15 µs of CPU a statement. A connection replaced gets a cursor of its own."""
    kept = wrapper.__dict__.get("_bound_cursor")
    if kept is not None and kept.connection is wrapper.connection:
        cursor = kept
    else:
        cursor = wrapper._bound_cursor = _server_binding_cursor()(wrapper.connection)
    tzloader = cursor.adapters.get_loader(_TIMESTAMPTZ_OID, _TEXT)
    if wrapper.timezone != tzloader.timezone:
        _register_tzloader()(wrapper.timezone, cursor)
    return cursor


@functools.cache
def _server_binding_cursor() -> type:
    from django.db.backends.postgresql.base import ServerBindingCursor

    return ServerBindingCursor


@functools.cache
def _register_tzloader() -> Callable:
    from django.db.backends.postgresql.psycopg_any import register_tzloader

    return register_tzloader


_TIMESTAMPTZ_OID = 1184  # psycopg's, as Django's create_cursor looks its loader up
_TEXT = 0  # psycopg.pq.Format.TEXT


def engine() -> str:
    """The database's engine, which the SQL's spelling depends on: read from the settings, without
    looking the thread's connection up."""
    return connections.settings[DEFAULT_DB_ALIAS]["ENGINE"]


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


def table(model: type[Model]) -> str:
    return _table(model, engine())


def column(model: type[Model], name: str) -> str:
    """A field's column, by the field's name or attname ("team" or "team_id")."""
    return _column(model, name, engine())


def columns(model: type[Model], alias: str = "") -> str:
    """Every column of the model, in the order `load()` reads them (as `alias`."column" if given)."""
    return _columns(model, alias, engine())


# The names, quoted once per database engine (the SQL of each request is made of them).


@functools.cache
def _table(model: type[Model], engine: str) -> str:
    return quote(model._meta.db_table)


@functools.cache
def _column(model: type[Model], name: str, engine: str) -> str:
    return quote(model._meta.get_field(name).column)


@functools.cache
def _columns(model: type[Model], alias: str, engine: str) -> str:
    prefix = f"{quote(alias)}." if alias else ""
    return ", ".join(prefix + quote(field.column) for field in model._meta.concrete_fields)


def adapt(model: type[Model], name: str, value: Any) -> Any:
    """A value for a field's column as the ORM writes it (Decimal, datetime and JSON adapted)."""
    return preparer(model._meta.get_field(name))(value, db())


def update(
    model: type[Model], pk: Any, values: dict[str, Any], where: str = "", params: Iterable = ()
) -> int:
    """UPDATE these fields (by name or attname) of the row `pk`, and only while `where` (plain SQL
    ANDed to the key, with `params`) holds: the number of rows changed, 0 or 1."""
    wrapper = db()
    sql, prepares = _update(model, tuple(values), where, engine())
    arguments = [prepare(value, wrapper) for prepare, value in zip(prepares, values.values(), strict=True)]
    return run(sql, [*arguments, pk, *params], wrapper=wrapper)


def update_sql(model: type[Model], names: tuple[str, ...], where: str = "") -> tuple[str, list[Prepare]]:
    """update()'s statement (its parameters: the values, the key, then the where's) and how each
    value is prepared, to be part of a larger statement."""
    return _update(model, names, where, engine())


@functools.lru_cache(maxsize=256)
def _update(model: type[Model], names: tuple[str, ...], where: str, engine: str) -> tuple[str, list[Prepare]]:
    sets = ", ".join(f"{_column(model, name, engine)} = %s" for name in names)
    sql = (
        f"UPDATE {_table(model, engine)} SET {sets} WHERE {_column(model, model._meta.pk.name, engine)} = %s"
    )
    if where:
        sql += f" AND ({where})"
    return sql, [preparer(model._meta.get_field(name)) for name in names]


def insert(instance: Model) -> None:
    """INSERT a new instance whose key the database makes, as `save(force_insert=True)` would
    write it (auto_now_add fields set, each value adapted by its field) and with its key filled
    in. It sends no pre_save or post_save signal: none is connected to the models written so
    (tests/llmhub/test_statements.py checks it)."""
    wrapper = db()
    model = type(instance)
    sql, columns, returning = _insert(model, engine())
    values = [prepare(read(instance), wrapper) for read, prepare in columns]
    instance.pk = (
        run(sql, values, fetchone, wrapper)[0] if returning else run(sql, values, lastrowid, wrapper)
    )
    instance._state.adding, instance._state.db = False, wrapper.alias


@functools.cache
def _insert(
    model: type[Model], engine: str
) -> tuple[str, list[tuple[Callable[[Model], Any], Prepare]], bool]:
    """The INSERT of every concrete column but the auto key, with how each value is read from the
    instance (pre_save(), as save() reads it, where a field has its own: auto_now_add) and prepared;
    whether it returns the key (PostgreSQL, SQLite from 3.35) or the cursor's lastrowid holds it."""
    fields = _inserted(model)
    names = ", ".join(_column(model, field.name, engine) for field in fields)
    sql = f"INSERT INTO {_table(model, engine)} ({names}) VALUES ({', '.join(['%s'] * len(fields))})"
    returning = connection.features.can_return_columns_from_insert
    if returning:
        sql += f" RETURNING {_column(model, model._meta.pk.name, engine)}"
    columns = [(_reader(field), preparer(field)) for field in fields]
    return sql, columns, returning


def insert_select(
    model: type[Model], source: str, also: tuple[str, ...] = ()
) -> tuple[str, list[tuple[Callable[[Model], Any], Prepare]]]:
    """PostgreSQL: insert()'s INSERT as one row for each row of `source` (a table or a WITH query),
    returning its key (then the columns of the fields named in `also`): its values as insert()
    reads and prepares them, each cast to its column's type. A parameter in a SELECT is not typed
    by the column it goes to, and psycopg sends text and None untyped. The cast leaves out the
    length and scale (varchar(64), numeric(20, 12)): the column's own type checks and rounds the
    value as it does for insert()'s."""
    spelling = engine()
    sql, columns, returning = _insert(model, spelling)
    assert returning, "PostgreSQL returns the key"
    into = sql.partition(" VALUES ")[0]
    values = ", ".join(f"%s::{cast(field)}" for field in _inserted(model))
    returned = ", ".join(_column(model, name, spelling) for name in (model._meta.pk.name, *also))
    return f"{into} SELECT {values} FROM {source} RETURNING {returned}", columns


def _inserted(model: type[Model]) -> list[Field]:
    """The columns an INSERT of ours writes: every concrete one but the auto key."""
    meta = model._meta
    return [field for field in meta.local_concrete_fields if field is not meta.auto_field]


def cast(field: Field) -> str:
    """The column's type for a cast, without its length or scale."""
    return field.db_type(connection).partition("(")[0]


def _reader(field: Field) -> Callable[[Model], Any]:
    plain = type(field).pre_save is Field.pre_save
    # Django's date and time fields read the attribute too, unless they set it (auto_now...).
    if plain or (type(field) in _DATED and not (field.auto_now or field.auto_now_add)):
        return operator.attrgetter(field.attname)
    if type(field).pre_save is models.DateTimeField.pre_save:  # auto_now or auto_now_add: set now
        return functools.partial(_set_now, field.attname)
    return functools.partial(_pre_save, field)


def _set_now(attname: str, instance: Model) -> datetime:
    """DateTimeField.pre_save of an auto_now(_add) field for an INSERT: timezone.now(), kept on the
    instance, with USE_TZ read through llmhub.conf (a read of settings costs ~3,000 instructions)."""
    value = conf.now()
    setattr(instance, attname, value)
    return value


_DATED = (models.DateField, models.DateTimeField, models.TimeField)


def _pre_save(field: Field, instance: Model) -> Any:
    return field.pre_save(instance, True)
