"""Model instances as the ORM makes them, without Model.__init__'s work per field: from a row of
llmhub/statements.py's SQL (`load`), for a new row (`new`), and a copy of one (`copy`).

Model.__init__ and from_db() go through every field with its descriptor and signals: ~2 µs a
field, ~40 µs for a Run, and the hot path makes a few instances a request (issue 16). For a model
whose fields' attributes only store their value (`_plain`), and while no init signal or database
router is connected, the instance's __dict__ is filled directly; anything else goes to Django's
own way. tests/llmhub/test_statements.py compares both ways for every model made so.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.db import connection, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model
from django.db.models.base import ModelState
from django.db.models.fields import return_None
from django.db.models.fields.related_descriptors import (
    ForeignKeyDeferredAttribute,
    ForwardManyToOneDescriptor,
)
from django.db.models.signals import post_init, pre_init

from llmhub import statements

M = TypeVar("M", bound=Model)
Converter = Callable[[Any, Any, Any], Any]


def load(model: type[M], row: Sequence, start: int = 0, wrapper: BaseDatabaseWrapper | None = None) -> M:
    """The instance whose `columns()` begin at `row[start]`, converted as the ORM converts them."""
    fields = model._meta.concrete_fields
    values = list(row[start : start + len(fields)])
    if wrapper is None:
        wrapper = statements.db()
    ops = wrapper.ops
    for index, col, converters in _converting(model, statements.engine()):
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


def copy(instance: M) -> M:
    """A copy of a loaded instance with its own state: what copy.copy() of a model instance makes,
    without its pickling protocol (a kept instance handed to a caller free to change it)."""
    copied = instance.__class__.__new__(instance.__class__)
    copied.__dict__.update(instance.__dict__)
    state = copied._state = ModelState()
    state.adding, state.db = False, instance._state.db
    return copied
