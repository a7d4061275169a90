"""The cast: fake providers on 127.0.0.1, and adapters configured to talk to them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest
from django.conf import settings

from providers.base import ProviderAdapter, ProviderConfig
from providers.crypto import Secret
from providers.definitions import BUILTIN_FILE, ProviderDefinition, load_file
from tests.fakes.server import FakeProvider

GOOD_KEYS = {
    "openai": "sk-test-openai-good-key-0000vX2Q",
    "anthropic": "sk-ant-test-anthropic-good-key-00a1B2",
    "gemini": "AIza-test-gemini-good-key-0000g3M1",
    "ollama": "sk-test-ollama-proxy-key-0000o11a",
    "azure": "azure-test-key-00000000000000a2u7",
}
# Settings besides the key that some kinds need to have any model at all.
EXTRA_CREDENTIALS = {"azure": {"deployments": "gpt4o-prod=gpt-4o, mini=gpt-4o-mini, reasoner=o3-mini"}}
BAD_KEY = "sk-test-wrong-key-000000000000ZZZZ"

# No background replay of the settlement spool in the test process (importing llmhub.asgi would start
# one): tests replay when they mean to; the test server (tests/browser/conftest.py) runs its own.
settings.LLMHUB_SPOOL_REPLAY_SECONDS = 0


@pytest.fixture(scope="session", autouse=True)
def stray_connections_closed(django_db_setup, django_db_blocker) -> Iterator[None]:
    """Async tests leave connections open in worker threads; PostgreSQL refuses to drop a test
    database still in use, so they are ended before it is dropped."""
    yield
    from django.db import connection

    if connection.vendor == "postgresql":
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture(scope="session", autouse=True)
def session_spool(tmp_path_factory) -> None:
    """Settlements spooled by tests (and by the test server) stay out of the data folder."""
    settings.LLMHUB_SPOOL_PATH = tmp_path_factory.mktemp("spool") / "settlements.spool"


@pytest.fixture(scope="session", autouse=True)
def static_files(django_test_environment) -> None:
    """Collect static files once, as `make run` does: pages use the manifest's hashed names. The
    other workers of a parallel run wait for the first one's and use them."""
    import fcntl
    import os

    from django.core.management import call_command

    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")  # the same in every worker of one run
    marker = settings.STATIC_ROOT / ".collected-by"
    settings.STATIC_ROOT.mkdir(parents=True, exist_ok=True)
    with open(settings.STATIC_ROOT / ".collect.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # with several workers (pytest -n), the first one collects
        if run and marker.exists() and marker.read_text() == run:
            return
        call_command("collectstatic", interactive=False, verbosity=0)
        marker.write_text(run)


@pytest.fixture(scope="session")
def hub_url(django_db_setup, static_files, session_spool) -> Iterator[str]:
    """The app served as `make run` serves it, in its own process, on the test database: one for the
    whole session (of each test worker). Runs are recovered at its start only: tests that recover runs
    themselves must not race it."""
    from tests.servers import Server  # (it imports this module)

    server = Server("browser/daphne", LLMHUB_RECOVERY_SECONDS="3600", LLMHUB_SPOOL_REPLAY_SECONDS="0.5")
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Tests wipe tables between cases, which the audit log's triggers would refuse: unlock them
    (tests/audit/test_audit_log.py locks them again to prove they hold). When the selected tests
    need no database, none was created and the connection still names the real one: leave it be."""
    from django.db import connection

    if not _is_test_database(connection):
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_guard SET locked = 0")


def _is_test_database(connection) -> bool:
    """Whether pytest-django has switched the connection to a test database it created."""
    from django.db.backends.base.creation import TEST_DATABASE_PREFIX

    name, test_name = str(connection.settings_dict["NAME"]), connection.settings_dict["TEST"].get("NAME")
    if test_name:
        return name == str(test_name)
    if connection.vendor == "sqlite":
        return connection.is_in_memory_db()
    return name.startswith(TEST_DATABASE_PREFIX)


def builtin_definition(provider_id: str) -> ProviderDefinition:
    from providers.kinds import ADAPTERS

    definitions = load_file(BUILTIN_FILE, dialects=ADAPTERS)
    return next(d for d in definitions if d.id == provider_id)


def adapter_for(
    adapter_class: type[ProviderAdapter],
    fake: FakeProvider,
    key: str | None = None,
    provider_id: str | None = None,
    **overrides,
) -> ProviderAdapter:
    """An adapter for a built-in provider's catalogue, pointed at a fake server."""
    from providers.kinds import ADAPTERS

    provider_id = provider_id or adapter_class.dialect
    definition = builtin_definition(provider_id)
    extra = EXTRA_CREDENTIALS.get(provider_id, {})
    # A model priced as another (an Azure deployment) takes its limits and capabilities, as the registry does.
    known = {m.info.id: m.info for d in load_file(BUILTIN_FILE, dialects=ADAPTERS) for m in d.models}
    models = [m.info for m in definition.models] + [
        dataclasses.replace(known[m.prices_as], id=m.info.id, display_name=m.info.display_name)
        if m.prices_as in known
        else m.info
        for m in adapter_class.catalogue(extra)
    ]
    config = ProviderConfig(
        provider_id=provider_id,
        display_name=definition.name,
        endpoint=overrides.pop("endpoint", fake.url),
        credentials={"api_key": Secret(key if key is not None else GOOD_KEYS[provider_id]), **extra},
        models=tuple(models),
        default_model=definition.default_model,
        **overrides,
    )
    return adapter_class(config)


def _serve(fake: FakeProvider) -> Iterator[FakeProvider]:
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fake_openai() -> Iterator[FakeProvider]:
    from tests.fakes.openai import FakeOpenAI

    yield from _serve(FakeOpenAI(api_keys={GOOD_KEYS["openai"]}))


@pytest.fixture
def fake_anthropic() -> Iterator[FakeProvider]:
    from tests.fakes.anthropic import FakeAnthropic

    yield from _serve(FakeAnthropic(api_keys={GOOD_KEYS["anthropic"]}))


@pytest.fixture
def fake_gemini() -> Iterator[FakeProvider]:
    from tests.fakes.gemini import FakeGemini

    yield from _serve(FakeGemini(api_keys={GOOD_KEYS["gemini"]}))


@pytest.fixture
def fake_azure() -> Iterator[FakeProvider]:
    from tests.fakes.azure import FakeAzure

    yield from _serve(FakeAzure(api_keys={GOOD_KEYS["azure"]}))


@pytest.fixture
def fake_ollama() -> Iterator[FakeProvider]:
    """An Ollama behind a proxy that wants a key (the conformance suite checks keys); tests of a
    plain local Ollama add "" to its keys."""
    from tests.fakes.ollama import FakeOllama

    yield from _serve(FakeOllama(api_keys={GOOD_KEYS["ollama"]}))


# ---- the cast: Alice administers team Alpha, Bob is a member of it, Charlie has a team of his own.
PASSWORD = "correct horse battery staple"


@pytest.fixture
def alpha(db):
    from accounts.models import Team

    return Team.objects.create(name="Alpha")


def _person(name: str, team, role: str):
    from accounts.models import Membership, User

    user = User.objects.create_user(name, f"{name}@example.com", PASSWORD)
    if team is not None:
        Membership.objects.create(user=user, team=team, role=role)
    return user


@pytest.fixture
def alice(alpha):
    return _person("alice", alpha, "admin")


@pytest.fixture
def bob(alpha):
    return _person("bob", alpha, "member")


@pytest.fixture
def charlie(db):
    from accounts.models import Team

    return _person("charlie", Team.objects.create(name="Charlie's team"), "admin")


def _client_for(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def alice_client(alice):
    return _client_for(alice)


@pytest.fixture
def bob_client(bob):
    return _client_for(bob)


@pytest.fixture
def charlie_client(charlie):
    return _client_for(charlie)


@pytest.fixture
def database_faults(settings) -> Iterator[None]:
    """Ready for tests/database_faults.py: SQLite connections opened from now on wait 0.3 s for a
    lock, settlements retry once, quickly, and this thread's PostgreSQL connection (which the test
    framework cleans up with) is never cut."""
    from asgiref.sync import SyncToAsync
    from django.db import connection, connections

    from tests import database_faults

    settings.LLMHUB_SETTLE_RETRIES = 1
    settings.LLMHUB_SETTLE_RETRY_SECONDS = 0.05
    if connection.vendor != "sqlite":
        connection.ensure_connection()
        database_faults.spared_pid = connection.connection.info.backend_pid
        yield
        return
    options = connection.settings_dict["OPTIONS"]
    before = options["timeout"]
    options["timeout"] = 0.3
    yield
    options["timeout"] = before
    # sync_to_async's shared thread keeps its connection from test to test: not with this timeout.
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()


@pytest.fixture
def spool_file(settings, tmp_path):
    """This test's own settlement spool."""
    settings.LLMHUB_SPOOL_PATH = tmp_path / "settlements.spool"
    return settings.LLMHUB_SPOOL_PATH


def database_url_for_subprocesses() -> str:
    """The test database (SQLite file or PostgreSQL) as a DATABASE_URL, for the server and command
    processes tests start."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] == settings.SQLITE_ENGINE:
        return f"sqlite:///{db['NAME']}"
    credentials = f"{quote(db['USER'])}:{quote(db['PASSWORD'])}@" if db.get("USER") else ""
    return f"postgres://{credentials}{db['HOST']}:{db['PORT']}/{db['NAME']}"


@contextmanager
def failing_writes(table: str, event: str = "INSERT") -> Iterator[None]:
    """A real database fault, for every process using the test database: each write of `event`
    ("INSERT", "UPDATE OF output") on `table` fails, as a full disk would, until the block ends."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            fail = "SELECT RAISE(ABORT, 'disk I/O error (a test fault)')"
            cursor.execute(f"CREATE TRIGGER test_fault BEFORE {event} ON {table} BEGIN {fail}; END")
        else:
            fail = "RAISE EXCEPTION 'disk I/O error (a test fault)'"
            cursor.execute(
                f"CREATE FUNCTION test_fault() RETURNS trigger AS $$ BEGIN {fail}; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                f"CREATE TRIGGER test_fault BEFORE {event} ON {table} FOR EACH ROW EXECUTE FUNCTION test_fault()"
            )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute("DROP TRIGGER test_fault")
            else:
                cursor.execute(f"DROP TRIGGER test_fault ON {table}")
                cursor.execute("DROP FUNCTION test_fault()")
