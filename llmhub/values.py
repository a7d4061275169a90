"""Values written as the ORM writes them, in one step (llmhub/statements.py's INSERTs and UPDATEs).

The ORM prepares each value through a chain of calls (get_db_prep_save,
get_db_prep_value, get_prep_value, to_python, with their checks), ~2.5 µs a column; the run's
INSERT has 35 columns. For a value of the type the hot path writes to a field of Django's own
class, that chain ends in one step, taken here directly: the value itself, or the connection's
adapter (ops.adapt_*) that the chain calls last. Any other value or field class takes the ORM's
way. tests/llmhub/test_statements.py compares both for every column of the models written so.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models import Field

Prepare = Callable[[Any, BaseDatabaseWrapper], Any]


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
            if type(value) is datetime and (value.tzinfo is UTC or value.utcoffset() is not None):
                return adapt_moment(value, wrapper)
            return slow(value, wrapper)

        return moment
    if kind is models.JSONField:
        encoder = field.encoder

        def document(value: Any, wrapper: BaseDatabaseWrapper) -> Any:
            if value is None:
                return None
            if type(value) in (dict, list):
                if not value and encoder is None and type(wrapper.ops).adapt_json_value is _DUMPED:
                    # json.dumps()'s text, without the encoder it sets up for each call (~14,000
                    # instructions): five of the six documents of a run's rows are empty.
                    return "{}" if type(value) is dict else "[]"
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
    less: str() of the datetime made naive in the connection's time zone."""
    if wrapper.vendor == "sqlite" and wrapper.timezone is not None:
        if value.tzinfo is wrapper.timezone and type(value) is datetime and value.year >= 1000:
            # Already in that zone (the hot path's datetimes are in UTC, as the connection's).
            return _naive_text(value)
        if value.utcoffset() is not None:
            return str(value.astimezone(wrapper.timezone).replace(tzinfo=None))
    return wrapper.ops.adapt_datetimefield_value(value)


def _naive_text(value: datetime) -> str:
    """str(value.replace(tzinfo=None)) for a year of four digits, from the fields: ~6,800
    instructions against ~19,000 for the conversion, replace() (its keywords parsed) and str()
    (sprintf for each field), counted by callgrind."""
    text = (
        f"{value.year}-{_TWO_DIGITS[value.month]}-{_TWO_DIGITS[value.day]} "
        f"{_TWO_DIGITS[value.hour]}:{_TWO_DIGITS[value.minute]}:{_TWO_DIGITS[value.second]}"
    )
    microsecond = value.microsecond
    return f"{text}.{str(1_000_000 + microsecond)[1:]}" if microsecond else text


# The adapter of the backends that store JSON as the text json.dumps() makes (SQLite's).
_DUMPED = BaseDatabaseOperations.adapt_json_value
_INTEGERS = (
    models.IntegerField,
    models.BigIntegerField,
    models.SmallIntegerField,
    models.PositiveIntegerField,
    models.PositiveBigIntegerField,
    models.PositiveSmallIntegerField,
)
_AUTO = (models.AutoField, models.BigAutoField, models.SmallAutoField)
_TWO_DIGITS = tuple(f"{number:02d}" for number in range(60))
