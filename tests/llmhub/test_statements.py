"""The hot path's plain SQL (llmhub/statements.py) reads and writes values exactly as the ORM does:
sub-cent Decimals (stored by SQLite as floats), aware datetimes, JSON, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models.signals import post_save, pre_save
from django.utils import timezone

from gateway import keys
from gateway.models import ApiKey
from llmhub import statements
from usage.models import Budget, Run, UsageRecord

pytestmark = pytest.mark.django_db


def read(model, pk):
    """The row as statements.load() reads it."""
    sql = f"SELECT {statements.columns(model)} FROM {statements.table(model)} WHERE {statements.column(model, 'id')} = %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, [pk])
        return statements.load(model, cursor.fetchone())


def same(plain, orm, but: tuple[str, ...] = ()) -> None:
    for field in type(orm)._meta.concrete_fields:
        if field.name in but:
            continue
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


def test_an_insert_writes_as_the_orm_writes(alpha):
    expires = timezone.now() + timedelta(minutes=1)

    def made() -> Run:
        return Run(
            team=alpha,
            model_requested="openai/gpt-4o",
            messages=[{"role": "user", "content": "Grüße, 100%"}],
            max_tokens=10,
            temperature=Decimal("0.70"),
            options={"stop": ["%s"]},
            estimated_cost_usd=Decimal("0.000000123456"),
            max_cost_usd=Decimal("123456789012.345678"),
            reservation_expires_at=expires,
        )

    plain, orm = made(), made()
    statements.insert(plain)
    orm.save(force_insert=True)
    assert (plain.pk, plain._state.adding, plain._state.db) == (orm.pk - 1, False, "default")
    stored = Run.objects.get(pk=plain.pk)
    assert (stored.uuid, stored.created_at) == (plain.uuid, plain.created_at)  # made with the instance
    same(stored, Run.objects.get(pk=orm.pk), but=("id", "uuid", "created_at"))
    same(stored, read(Run, plain.pk))


def test_a_usage_row_inserted_reads_back_as_the_orm_saved_it(alpha):
    values = {
        "provider_id": "openai",
        "model": "gpt-4o",
        "run_id": "r",
        "input_tokens": 3,
        "output_tokens": 2**40,
        "cost_usd": Decimal("0.000000000001"),
        "source": "api",
        "team": alpha,
    }
    plain, orm = UsageRecord(**values), UsageRecord(**values)
    statements.insert(plain)
    orm.save(force_insert=True)
    same(UsageRecord.objects.get(pk=plain.pk), UsageRecord.objects.get(pk=orm.pk), but=("id", "created_at"))
    assert UsageRecord.objects.get(pk=plain.pk).created_at == plain.created_at


def test_no_signal_is_connected_to_the_models_inserted_in_plain_sql():
    """statements.insert() sends no pre_save or post_save: a receiver added later would be skipped."""
    for model in (Run, UsageRecord):
        assert (pre_save.has_listeners(model), post_save.has_listeners(model)) == (False, False), model


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
