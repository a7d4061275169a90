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
"""

from __future__ import annotations

import functools
import inspect
import operator
from asyncio import _get_running_loop
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from django.conf import settings
from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, connection, connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model
from django.db.models.base import ModelState
from django.db.models.fields import return_None
from django.db.models.fields.related_descriptors import (
    ForeignKeyDeferredAttribute,
    ForwardManyToOneDescriptor,
)
from django.db.models.signals import post_init, pre_init

from llmhub.sqlite.base import qmark

M = TypeVar("M", bound=Model)
Converter = Callable[[Any, Any, Any], Any]
Prepare = Callable[[Any, BaseDatabaseWrapper], Any]


def db() -> BaseDatabaseWrapper:
    """This thread's connection itself (not the proxy `django.db.connection`): look it up once per
    statement, or once for several, and use it for everything that statement needs."""
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
        wrapper = connections[DEFAULT_DB_ALIAS]
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


def _engine() -> str:
    """The database's engine, which the SQL's spelling depends on: read from the settings, without
    looking the thread's connection up."""
    return connections.settings[DEFAULT_DB_ALIAS]["ENGINE"]


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


def table(model: type[Model]) -> str:
    return _table(model, _engine())


def column(model: type[Model], name: str) -> str:
    """A field's column, by the field's name or attname ("team" or "team_id")."""
    return _column(model, name, _engine())


def columns(model: type[Model], alias: str = "") -> str:
    """Every column of the model, in the order `load()` reads them (as `alias`."column" if given)."""
    return _columns(model, alias, _engine())


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


def load(model: type[M], row: Sequence, start: int = 0, wrapper: BaseDatabaseWrapper | None = None) -> M:
    """The instance whose `columns()` begin at `row[start]`, converted as the ORM converts them."""
    fields = model._meta.concrete_fields
    values = list(row[start : start + len(fields)])
    if wrapper is None:
        wrapper = db()
    ops = wrapper.ops
    for index, col, converters in _converting(model, _engine()):
        for converter in converters:
            convert = getattr(ops, converter) if isinstance(converter, str) else converter
            values[index] = convert(values[index], col, wrapper)
    if pre_init.receivers or post_init.receivers or not _plain(model):
        return model.from_db(wrapper.alias, None, values)
    # What from_db() makes of a whole row, without Model.__init__'s work per field (~4 µs a row).
    instance = model.__new__(model)
    state = instance._state = ModelState()
    state.adding, state.db = False, wrapper.alias
    instance.__dict__.update(zip(_attnames(model), values, strict=True))
    return instance


@functools.cache
def _plain(model: type[Model]) -> bool:
    """Whether Model.__init__ only stores each value in the instance's __dict__ for this model: it
    makes and loads its instances as Model does, and no field's attribute does more when set (a
    foreign key's id only clears a cached related object, which a new instance has none of)."""
    if model.__init__ is not Model.__init__ or model.from_db.__func__ is not Model.from_db.__func__:
        return False
    for field in model._meta.concrete_fields:
        attribute = inspect.getattr_static(model, field.attname, None)
        if hasattr(type(attribute), "__set__") and type(attribute) is not ForeignKeyDeferredAttribute:
            return False
    return True


@functools.cache
def _attnames(model: type[Model]) -> tuple[str, ...]:
    return tuple(field.attname for field in model._meta.concrete_fields)


@functools.cache
def _converting(model: type[Model], engine: str) -> list[tuple[int, Any, list[Converter | str]]]:
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


def new(model: type[M], /, **values: Any) -> M:
    """model(**values) for a new row, as Model.__init__ makes it (each field not given gets its
    default; a foreign key given as an instance is stored by its key, the instance cached), without
    its work per field (~2 µs a field, ~40 µs for a Run). Anything else it handles (an unknown
    name, a property, a related object of another database or class, signals, routers) is left
    to Model.__init__ itself."""
    fields = _fields(model)
    if pre_init.receivers or post_init.receivers or router.routers or fields is None:
        return model(**values)
    instance = model.__new__(model)
    state = instance._state = ModelState()
    attributes, related = instance.__dict__, {}
    given = 0
    for name, attname, constant, default, remote in fields:
        if remote is not None and name in values:
            value = values[name]
            if value is None:
                attributes[attname] = related[name] = None
            elif (
                type(value) is remote[0]
                and value._state.db is not None
                and state.db in (None, value._state.db)
            ):
                state.db = value._state.db  # the ForeignKey's descriptor checks and sets it so
                attributes[attname], related[name] = getattr(value, remote[1]), value
            else:
                return model(**values)
            given += 1
        elif attname in values:
            attributes[attname] = values[attname]
            given += 1
        else:
            attributes[attname] = default() if constant is _CALLED else constant
    if given != len(values):  # a name that is no concrete field's: Model.__init__ says what it is
        return model(**values)
    if related:
        state.fields_cache = related
    return instance


_CALLED = object()


@functools.cache
def _fields(model: type[Model]) -> list[tuple[str, str, Any, Callable[[], Any], tuple | None]] | None:
    """For each field, as new() fills it: (name, attname, its constant default or _CALLED, the
    default's function, (the related model, its key's attname) when it is a many-to-one key); None
    for a model new() leaves to Model.__init__."""
    meta = model._meta
    if not _plain(model) or meta.fields != meta.concrete_fields or any(f.generated for f in meta.fields):
        return None
    found = []
    for field in meta.concrete_fields:
        descriptor = inspect.getattr_static(model, field.name, None)
        remote = None
        if type(descriptor) is ForwardManyToOneDescriptor:
            remote = (field.remote_field.model, field.target_field.attname)
        constant, default = _CALLED, field.get_default
        if type(field).get_default is Field.get_default:
            function = field._get_default
            if function is return_None:
                constant = None
            elif function is str:
                constant = ""
            elif field.has_default() and not callable(field.default):
                constant = field.default
            else:
                default = function
        found.append((field.name, field.attname, constant, default, remote))
    return found


def adapt(model: type[Model], name: str, value: Any) -> Any:
    """A value for a field's column as the ORM writes it (Decimal, datetime and JSON adapted)."""
    return preparer(model._meta.get_field(name))(value, db())


# Writing a value. The ORM prepares each value through a chain of calls (get_db_prep_save,
# get_db_prep_value, get_prep_value, to_python, with their checks), ~2.5 µs a column; the run's
# INSERT has 35 columns. For a value of the type the hot path writes to a field of Django's own
# class, that chain ends in one step, taken here directly: the value itself, or the connection's
# adapter (ops.adapt_*) that the chain calls last. Any other value or field class takes the ORM's
# way. tests/llmhub/test_statements.py compares both for every column of the models written so.


@functools.cache
def preparer(field: Field) -> Prepare:
    """field.get_db_prep_save(value, connection) as a function of (value, connection)."""
    slow = field.get_db_prep_save
    kind = type(field)
    if kind in (models.CharField, models.TextField):

        def text(value: Any, wrapper: BaseDatabaseWrapper) -> Any:
            return value if value is None or isinstance(value, str) else slow(value, wrapper)

        return text
    if kind in _INTEGERS:
        internal = field.get_internal_type()

        def integer(value: Any, wrapper: BaseDatabaseWrapper) -> Any:
            if value is None or type(value) is int:
                return wrapper.ops.adapt_integerfield_value(value, internal)
            return slow(value, wrapper)

        return integer
    if kind is models.DecimalField:
        digits, places = field.max_digits, field.decimal_places

        def decimal(value: Any, wrapper: BaseDatabaseWrapper) -> Any:
            if value is None or (type(value) is Decimal and value.is_finite()):
                return wrapper.ops.adapt_decimalfield_value(value, digits, places)
            return slow(value, wrapper)

        return decimal
    if kind is models.DateTimeField:

        def moment(value: Any, wrapper: BaseDatabaseWrapper) -> Any:
            # An aware datetime: a naive one is made aware, with a warning, by the ORM's way.
            if value is None:
                return None
            if type(value) is datetime and value.utcoffset() is not None:
                return adapt_moment(value, wrapper)
            return slow(value, wrapper)

        return moment
    if kind is models.JSONField:
        encoder = field.encoder

        def document(value: Any, wrapper: BaseDatabaseWrapper) -> Any:
            if value is None:
                return None
            if type(value) in (dict, list):
                return wrapper.ops.adapt_json_value(value, encoder)
            return slow(value, wrapper)

        return document
    if kind is models.UUIDField:

        def identifier(value: Any, wrapper: BaseDatabaseWrapper) -> Any:
            if type(value) is UUID:
                return value if wrapper.features.has_native_uuid_field else value.hex
            return slow(value, wrapper)

        return identifier
    if kind is models.ForeignKey:
        target = preparer(field.target_field)

        def key(value: Any, wrapper: BaseDatabaseWrapper) -> Any:
            if value is None:
                return None
            return target(value, wrapper) if type(value) is int else slow(value, wrapper)

        return key
    if kind in _AUTO:

        def auto(value: Any, wrapper: BaseDatabaseWrapper) -> Any:
            return wrapper.ops.validate_autopk_value(value) if type(value) is int else slow(value, wrapper)

        return auto
    return slow


def adapt_moment(value: datetime, wrapper: BaseDatabaseWrapper) -> Any:
    """A datetime as its connection's ops.adapt_datetimefield_value() writes it. SQLite's, for an
    aware one with USE_TZ (its connection's time zone set), is its steps without its calls, ~3 µs
    less."""
    if wrapper.vendor == "sqlite" and wrapper.timezone is not None and value.utcoffset() is not None:
        return str(value.astimezone(wrapper.timezone).replace(tzinfo=None))
    return wrapper.ops.adapt_datetimefield_value(value)


_INTEGERS = (
    models.IntegerField,
    models.BigIntegerField,
    models.SmallIntegerField,
    models.PositiveIntegerField,
    models.PositiveBigIntegerField,
    models.PositiveSmallIntegerField,
)
_AUTO = (models.AutoField, models.BigAutoField, models.SmallAutoField)


def update(
    model: type[Model], pk: Any, values: dict[str, Any], where: str = "", params: Iterable = ()
) -> int:
    """UPDATE these fields (by name or attname) of the row `pk`, and only while `where` (plain SQL
    ANDed to the key, with `params`) holds: the number of rows changed, 0 or 1."""
    wrapper = db()
    sql, prepares = _update(model, tuple(values), where, _engine())
    arguments = [prepare(value, wrapper) for prepare, value in zip(prepares, values.values(), strict=True)]
    return run(sql, [*arguments, pk, *params], wrapper=wrapper)


def update_sql(model: type[Model], names: tuple[str, ...], where: str = "") -> tuple[str, list[Prepare]]:
    """update()'s statement (its parameters: the values, the key, then the where's) and how each
    value is prepared, to be part of a larger statement."""
    return _update(model, names, where, _engine())


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
    sql, columns, returning = _insert(model, _engine())
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
    model: type[Model], source: str
) -> tuple[str, list[tuple[Callable[[Model], Any], Prepare]]]:
    """PostgreSQL: insert()'s INSERT as one row for each row of `source` (a table or a WITH query),
    returning its key: its values as insert() reads and prepares them, each cast to its column's
    type. A parameter in a SELECT is not typed by the column it goes to, and psycopg sends text and
    None untyped. The cast leaves out the length and scale (varchar(64), numeric(20, 12)): the
    column's own type checks and rounds the value as it does for insert()'s."""
    engine = _engine()
    sql, columns, returning = _insert(model, engine)
    assert returning, "PostgreSQL returns the key"
    into = sql.partition(" VALUES ")[0]
    values = ", ".join(f"%s::{cast(field)}" for field in _inserted(model))
    return (
        f"{into} SELECT {values} FROM {source} RETURNING {_column(model, model._meta.pk.name, engine)}",
        columns,
    )


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
    return functools.partial(_pre_save, field)


_DATED = (models.DateField, models.DateTimeField, models.TimeField)


def _pre_save(field: Field, instance: Model) -> Any:
    return field.pre_save(instance, True)
