"""The hot path's plain SQL (llmhub/statements.py) reads and writes values exactly as the ORM does:
sub-cent Decimals (stored by SQLite as floats), aware datetimes, JSON, on SQLite and PostgreSQL; and
its statements, run on the connection's own cursor, fail, log and refuse as Django's cursor would."""

from __future__ import annotations

import select
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import SynchronousOnlyOperation
from django.core.signals import request_finished
from django.db import (
    DatabaseError,
    IntegrityError,
    OperationalError,
    connection,
    models,
    transaction,
)
from django.db.backends.utils import CursorWrapper
from django.db.models.signals import post_init, post_save, pre_save
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.translation import gettext_lazy

from accounts.models import Team
from gateway import keys
from gateway.models import ApiKey
from llmhub import instances, statements, values
from providers.models import CircuitBreaker
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from tests.database_faults import sqlite_file_read_only
from usage.models import Budget, Run, UsageRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def openai(alpha, fake_openai):
    return registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)


def read(model, pk):
    """The row as instances.load() reads it."""
    sql = f"SELECT {statements.columns(model)} FROM {statements.table(model)} WHERE {statements.column(model, model._meta.pk.name)} = %s"
    return instances.load(model, statements.run(sql, [pk], statements.fetchone))


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


def samples(field) -> list:
    """Values of the types the hot path writes to this kind of field, and others the ORM converts."""
    now = timezone.now()
    by_kind = {
        "CharField": ["openai/gpt-4o", "", Run.Status.STREAMING, gettext_lazy("lazy"), 5],
        "TextField": ["Grüße, 100%", "", gettext_lazy("lazy"), 5],
        "PositiveIntegerField": [0, 7, True, "12"],
        "PositiveBigIntegerField": [0, 2**40, True, "12"],
        "DecimalField": [Decimal("0.000000123456"), Decimal("12.50"), Decimal("-0"), 1.5, "2.25", 3],
        "DateTimeField": [
            now,
            now.replace(microsecond=0),
            now.replace(microsecond=7),
            datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            now.astimezone(ZoneInfo("UTC")),
            now.astimezone(ZoneInfo("Asia/Kolkata")),
            now.isoformat(),
        ],
        "JSONField": [{"stop": ["%s"], "n": 1.5}, [{"role": "user"}], [], {}, "text", 3],
        "UUIDField": [uuid.uuid4(), uuid.uuid4().hex],
        "ForeignKey": [3, "4", ""],
        "BigAutoField": [5, "6"],
    }
    return [None, *by_kind[type(field).__name__]]


def comparable(value):
    """A prepared value, comparable: psycopg's Jsonb wrapper as the text it sends."""
    if type(value).__name__ == "Jsonb":
        return "Jsonb", value.dumps(value.obj)
    return type(value), value


@pytest.mark.parametrize("model", [Run, UsageRecord])
def test_every_column_is_prepared_for_writing_as_the_orm_prepares_it(model):
    for field in model._meta.concrete_fields:
        for value in samples(field):
            if value is None and not field.null and not isinstance(field, models.JSONField):
                continue
            mine = values.preparer(field)(value, statements.db())
            theirs = field.get_db_prep_save(value, connection=connection)
            assert comparable(mine) == comparable(theirs), (field.name, value)


@pytest.mark.parametrize("zone", ["Europe/Paris", "Asia/Kolkata"])
def test_a_datetime_is_prepared_as_the_orm_prepares_it_for_a_database_with_its_own_time_zone(zone):
    """DATABASES' TIME_ZONE: SQLite's columns then hold that zone's wall time, whether the datetime
    is in UTC or already in that zone."""
    field = Run._meta.get_field("created_at")
    now = timezone.now()
    wrapper = statements.db()
    kept = wrapper.settings_dict["TIME_ZONE"]
    wrapper.settings_dict["TIME_ZONE"] = zone
    wrapper.__dict__.pop("timezone", None)
    try:
        for value in (
            now,
            now.astimezone(ZoneInfo(zone)),
            now.astimezone(ZoneInfo(zone)).replace(microsecond=0),
        ):
            mine = values.preparer(field)(value, wrapper)
            assert comparable(mine) == comparable(field.get_db_prep_save(value, connection=wrapper)), value
    finally:
        wrapper.settings_dict["TIME_ZONE"] = kept
        wrapper.__dict__.pop("timezone", None)


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


def test_an_instance_is_loaded_as_the_orm_makes_it_for_every_model_the_hot_path_loads(alpha, openai):
    """instances.load() builds the instance without Model.__init__: the same attributes, values and
    state as the ORM's own instance, and it saves and follows its relations as one."""
    key = keys.create(alpha, "plain", allowed_models=["fast"]).key
    budget = Budget.objects.create(team=alpha, api_key=key, daily_limit_usd=Decimal("0.000015"))
    CircuitBreaker.objects.create(provider=openai, failures=2, open_until=timezone.now(), last_error="x")
    for model, pk in ((ApiKey, key.pk), (Team, alpha.pk), (Budget, budget.pk), (CircuitBreaker, openai.pk)):
        assert instances._plain(model), model  # the fast way is the one tested here
        loaded, orm = read(model, pk), model.objects.get(pk=pk)
        same(loaded, orm)
        assert loaded.__dict__.keys() == orm.__dict__.keys(), model
        assert (loaded._state.adding, loaded._state.db) == (orm._state.adding, orm._state.db), model
        assert loaded == orm and hash(loaded) == hash(orm)
    loaded = read(Budget, budget.pk)
    assert (loaded.team, loaded.api_key) == (alpha, key)
    loaded.daily_limit_usd = Decimal("2")
    loaded.save()
    assert Budget.objects.get(pk=budget.pk).daily_limit_usd == Decimal("2")


def test_a_new_instance_is_made_as_model_init_makes_it(alpha, alice):
    """instances.new() fills a new instance without Model.__init__: the same attributes and
    values (defaults included), state and cached related objects, for the models the hot path makes."""
    key = keys.create(alpha, "plain").key
    run_values = {
        "team": alpha,
        "user": None,
        "api_key": key,
        "model_requested": "openai/gpt-4o-mini",
        "max_tokens": 64,
    }
    usage_values = {
        "team_id": alpha.pk,
        "user": alice,
        "provider_id": "openai",
        "model": "gpt-4o",
        "run_id": "r1",
    }
    for model, given in ((Run, run_values), (UsageRecord, usage_values)):
        made, orm = instances.new(model, **given), model(**given)
        same(made, orm, but=("uuid",))
        assert made.__dict__.keys() == orm.__dict__.keys(), model
        assert (made._state.adding, made._state.db) == (orm._state.adding, orm._state.db), model
        assert made._state.fields_cache == orm._state.fields_cache, model
    run = instances.new(Run, **run_values)
    assert run.uuid != instances.new(Run, **run_values).uuid  # a callable default, called each time
    assert run.api_key is key and run.messages == [] and run.messages is not Run().messages
    statements.insert(run)
    same(read(Run, run.pk), Run.objects.get(pk=run.pk))
    with pytest.raises(TypeError, match="unexpected keyword"):  # what Model.__init__ says
        instances.new(Run, team=alpha, colour="blue")


def test_a_model_with_an_init_receiver_is_loaded_by_the_orm(alpha):
    made = []

    def noted(sender, instance, **kwargs):
        made.append(instance)

    post_init.connect(noted, sender=Team)
    try:
        loaded = read(Team, alpha.pk)
    finally:
        post_init.disconnect(noted, sender=Team)
    assert made == [loaded] and loaded.name == alpha.name


def test_a_statement_runs_on_the_connections_own_cursor_unless_queries_are_watched(alpha):
    """Not through Django's cursor (its ~12 µs a statement), except when queries are logged or
    wrapped: then through it, so that nothing is hidden from them."""
    sql = f"SELECT {statements.column(Team, 'name')} FROM {statements.table(Team)} WHERE id = %s"
    through_django = []
    with connection.execute_wrapper(lambda execute, *args: through_django.append(args[0]) or execute(*args)):
        assert statements.run(sql, [alpha.pk], statements.fetchone) == (alpha.name,)
    with CaptureQueriesContext(connection) as captured:
        assert statements.run(sql, [alpha.pk], statements.fetchall) == [(alpha.name,)]
    assert through_django == [sql] and [query["sql"] for query in captured] == [
        sql.replace("%s", str(alpha.pk))
    ]
    watched = CursorWrapper._execute_with_wrappers
    seen = []
    CursorWrapper._execute_with_wrappers = lambda cursor, sql, *args: (
        seen.append(sql) or watched(cursor, sql, *args)
    )
    try:
        assert statements.run(sql, [alpha.pk], statements.fetchone) == (alpha.name,)
        assert statements.update(Team, alpha.pk, {"name": "Alpha"}) == 1
    finally:
        CursorWrapper._execute_with_wrappers = watched
    assert seen == []


def test_a_statement_is_logged_once_a_test_turns_debug_on(alpha, settings):
    sql = f"SELECT {statements.column(Team, 'name')} FROM {statements.table(Team)} WHERE id = %s"
    assert statements.run(sql, [alpha.pk], statements.fetchone) == (alpha.name,)  # DEBUG off: read
    settings.DEBUG = True
    assert statements.run(sql, [alpha.pk], statements.fetchone) == (alpha.name,)
    assert connection.queries[-1]["sql"] == sql.replace("%s", str(alpha.pk))


def test_a_database_error_is_djangos_and_a_broken_transaction_refuses_the_next_statement(alpha):
    with pytest.raises(DatabaseError) as raised, transaction.atomic():  # PostgreSQL: rolled back to here
        statements.run("SELECT nothing FROM no_such_table", (), statements.fetchone)
    assert type(raised.value).__module__ == "django.db.utils"
    with transaction.atomic():
        with pytest.raises(IntegrityError), transaction.atomic(savepoint=False):
            statements.update(Team, alpha.pk, {"name": None})  # NOT NULL
        with pytest.raises(TransactionManagementError):
            statements.run("SELECT 1", (), statements.fetchone)


async def test_a_statement_in_an_event_loop_is_refused_as_django_refuses_it(alpha, monkeypatch):
    """Even when this thread's connection is open: a statement would block the loop."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    connection.ensure_connection()
    monkeypatch.delenv("DJANGO_ALLOW_ASYNC_UNSAFE")
    with pytest.raises(SynchronousOnlyOperation):
        statements.run("SELECT 1", (), statements.fetchone)


@pytest.mark.skipif(connection.vendor != "sqlite", reason="a read-only SQLite file")
@pytest.mark.django_db(transaction=True)
def test_a_sqlite_connection_that_failed_a_statement_is_reopened_at_the_next_request(alpha):
    """Opened while the file was read-only, it stays read-only (llmhub/sqlite): the statement's
    failure marks it, and the request's end closes it; the next request writes again."""
    connection.close()
    with sqlite_file_read_only(connection.settings_dict["NAME"]):
        assert read(Team, alpha.pk).name == alpha.name  # opened now, read-only
        with pytest.raises(OperationalError):
            statements.update(Team, alpha.pk, {"name": "Written"})
    assert connection.faulted
    request_finished.send(sender=None)  # close_old_connections
    assert statements.update(Team, alpha.pk, {"name": "Written"}) == 1
    assert Team.objects.get(pk=alpha.pk).name == "Written"


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's BEGIN IMMEDIATE")
@pytest.mark.django_db(transaction=True)
def test_a_sqlite_transaction_begins_and_commits_on_the_connection_itself_unless_queries_are_watched(
    alpha,
):
    """BEGIN IMMEDIATE (the write lock, taken before the first statement) and COMMIT skip Django's
    cursor wrapper (llmhub/sqlite), as statements do; watched, they are seen as before."""
    other = sqlite3.connect(connection.settings_dict["NAME"], timeout=0, isolation_level=None)
    watched, seen = CursorWrapper._execute_with_wrappers, []
    CursorWrapper._execute_with_wrappers = lambda cursor, sql, *args: (
        seen.append(sql) or watched(cursor, sql, *args)
    )
    try:
        with transaction.atomic():
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")  # the lock is ours from BEGIN on
            statements.update(Team, alpha.pk, {"name": "Held"})
    finally:
        CursorWrapper._execute_with_wrappers = watched
    assert seen == [] and other.execute("SELECT name FROM accounts_team").fetchall() == [("Held",)]
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        statements.update(Team, alpha.pk, {"name": "Seen"})
    assert [query["sql"] for query in captured][::2] == ["BEGIN IMMEDIATE", "COMMIT"]

    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock past the busy timeout
    connection.connection.execute("PRAGMA busy_timeout = 0")
    try:
        with pytest.raises(OperationalError, match="locked"), transaction.atomic():
            pass
    finally:
        other.rollback()
        other.close()
    assert connection.faulted and not connection.in_atomic_block  # reopened at the next request
    connection.close()


def prepared() -> list[str]:
    """The statements prepared on this thread's PostgreSQL connection."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's prepared statements")
@pytest.mark.django_db(transaction=True)
def test_a_kept_postgresql_connection_prepares_the_statements_and_a_new_one_prepares_them_again(
    alpha, monkeypatch
):
    """Prepared once per connection while connections are kept (LLMHUB_DB_CONN_MAX_AGE, 60 s by
    default: llmhub/settings.py sets the threshold); a connection that breaks is replaced, and the new
    one prepares them again."""
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", {"prepare_threshold": 0})
    connection.close()
    sql = f"SELECT {statements.column(Team, 'name')} FROM {statements.table(Team)} WHERE id = %s"
    server_side = sql.replace("%s", "$1")
    for _ in range(2):
        assert statements.run(sql, [alpha.pk], statements.fetchone) == (alpha.name,)
    assert prepared() == [server_side]
    _cut(connection.connection.info.backend_pid)  # as in a fail-over
    with pytest.raises(OperationalError):
        statements.run(sql, [alpha.pk], statements.fetchone)
    request_finished.send(sender=None)  # close_old_connections, as each hop does
    assert connection.connection is None
    assert statements.run(sql, [alpha.pk], statements.fetchone) == (alpha.name,)
    assert statements.update(Team, alpha.pk, {"name": "Again"}) == 1
    assert statements.run(sql, [alpha.pk], statements.fetchone) == ("Again",)
    assert server_side in prepared()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's kept connections")
@pytest.mark.django_db(transaction=True)
def test_a_kept_connection_the_server_closed_is_reopened_before_its_next_use(alpha, monkeypatch, tmp_path):
    """After a fail-over or a restart, every kept connection is one the server has closed. It is
    noticed when the next hop (or request) starts using it, so no request fails on it: a plain
    statement and a transaction (as a reservation opens) each run on a new server connection."""
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", {"prepare_threshold": 0})
    connection.close()
    sql = f"SELECT {statements.column(Team, 'name')} FROM {statements.table(Team)} WHERE id = %s"
    assert statements.run(sql, [alpha.pk], statements.fetchone) == (alpha.name,)
    # A healthy one is checked without a round trip (Django's own check sends `SELECT 1`).
    request_finished.send(sender=None)
    with open(tmp_path / "trace", "w") as trace:
        connection.connection.pgconn.trace(trace.fileno())
        assert statements.run(sql, [alpha.pk], statements.fetchone) == (alpha.name,)
        connection.connection.pgconn.untrace()
    sent = [line.split("\t")[3] for line in (tmp_path / "trace").read_text().splitlines() if "\tF\t" in line]
    assert "Query" not in sent and "Bind" in sent, sent  # no `SELECT 1`; the values sent apart
    for step in ("statement", "transaction"):
        cut = connection.connection.info.backend_pid
        _cut(cut)
        readable, _, _ = select.select([connection.connection.fileno()], [], [], 5)
        assert readable, "the server did not end the session"
        request_finished.send(sender=None)  # close_old_connections, as each hop does
        if step == "statement":
            assert statements.run(sql, [alpha.pk], statements.fetchone) == (alpha.name,)
        else:
            with transaction.atomic():
                assert statements.update(Team, alpha.pk, {"name": "Again"}) == 1
        assert connection.connection.info.backend_pid != cut
    assert Team.objects.get(pk=alpha.pk).name == "Again"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's prepared statements")
@pytest.mark.django_db(transaction=True)
def test_a_postgresql_connection_closed_after_each_use_prepares_nothing(alpha, monkeypatch):
    """LLMHUB_DB_CONN_MAX_AGE=0 (e.g. behind pgbouncer in transaction mode, which may hand each
    transaction another server connection): the values are still sent apart, no statement is named."""
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", {})  # as llmhub/settings.py leaves it
    connection.close()
    sql = f"SELECT {statements.column(Team, 'name')} FROM {statements.table(Team)} WHERE id = %s"
    for _ in range(6):  # past psycopg's own threshold (5)
        assert statements.run(sql, [alpha.pk], statements.fetchone) == (alpha.name,)
    assert prepared() == []


def _cut(pid: int) -> None:
    """End that server process from another connection, as a fail-over or a restart does."""
    import psycopg

    db = connection.settings_dict
    params = {"host": db["HOST"], "port": db["PORT"], "user": db["USER"], "dbname": db["NAME"]}
    params = {k: v for k, v in params.items() if v} | {"password": db["PASSWORD"] or None}
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
