"""The hot path's plain SQL (llmhub/statements.py) reads and writes values exactly as the ORM does:
sub-cent Decimals (stored by SQLite as floats), aware datetimes, JSON, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from gateway import keys
from gateway.models import ApiKey
from llmhub import statements
from usage.models import Budget, Run

pytestmark = pytest.mark.django_db


def read(model, pk):
    """The row as statements.load() reads it."""
    sql = f"SELECT {statements.columns(model)} FROM {statements.table(model)} WHERE {statements.column(model, 'id')} = %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, [pk])
        return statements.load(model, cursor.fetchone())


def same(plain, orm) -> None:
    for field in type(orm)._meta.concrete_fields:
        mine, theirs = getattr(plain, field.attname), getattr(orm, field.attname)
        assert (mine, type(mine), str(mine)) == (theirs, type(theirs), str(theirs)), field.name


def test_a_row_is_loaded_as_the_orm_loads_it(alpha):
    budget = Budget.objects.create(
        team=alpha,
        daily_limit_usd=Decimal("0.000015"),
        monthly_limit_usd=Decimal("123456789012.345678"),
        alert_threshold=Decimal("0.85"),
    )
    key = keys.create(alpha, "plain", allowed_models=["openai/gpt-4o", "fast"]).key
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
    same(read(Budget, budget.pk), Budget.objects.get(pk=budget.pk))
    loaded = read(ApiKey, key.pk)
    same(loaded, ApiKey.objects.get(pk=key.pk))
    assert loaded.allowed_models == ["openai/gpt-4o", "fast"] and timezone.is_aware(loaded.last_used_at)


def test_an_update_writes_as_the_orm_writes_and_only_where_its_condition_holds(alpha):
    run = Run.objects.create(team=alpha, model_requested="openai/gpt-4o", max_tokens=10, status="streaming")
    later = timezone.now() + timedelta(minutes=1)
    values = {
        "cost_usd": Decimal("0.000000123456"),
        "answer": {"tool_calls": [{"name": "f", "arguments": "{}"}]},
        "finished_at": later,
        "status": "completed",
    }
    streaming = f"{statements.column(Run, 'status')} = %s"
    assert statements.update(Run, run.pk, values, streaming, ["pending"]) == 0
    assert Run.objects.get(pk=run.pk).status == "streaming"
    assert statements.update(Run, run.pk, values, streaming, ["streaming"]) == 1
    stored = Run.objects.get(pk=run.pk)
    assert {name: getattr(stored, name) for name in values} == values
    Run.objects.filter(pk=run.pk).update(**values)  # the ORM's own write reads back the same
    same(read(Run, run.pk), stored)


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's placeholders only")
def test_sqlite_placeholders_are_converted_as_django_converts_them_each_time():
    """llmhub/sqlite keeps each statement's conversion: the same text gives the same answer, a
    literal %% stays a percent sign, and named parameters (pyformat) are still converted."""
    with connection.cursor() as cursor:
        for value in (1, 2):
            cursor.execute("SELECT %s, '100%%', '%%s'", [value])
            assert cursor.fetchone() == (value, "100%", "%s")
        cursor.execute("SELECT %(a)s, %(b)s", {"a": 1, "b": "x"})
        assert cursor.fetchone() == (1, "x")
