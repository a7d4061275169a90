"""Providers defined only in a TOML file: loaded, reloaded without a restart, and used like built-ins."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from providers.base import Delta, GenerationRequest, Message
from providers.models import Provider
from providers.registry import registry
from tests.fakes.openai import FakeOpenAI
from usage import runs
from usage.events import Ended
from usage.models import Budget, Run, UsageRecord

GROQ_KEY = "gsk_test_groq_key_000000000000aB9z"


@pytest.fixture
def fake_groq():
    fake = FakeOpenAI(api_keys={GROQ_KEY})
    fake.prefix = "/openai/v1"
    fake.models = ["llama-3.3-70b-versatile"]
    fake.start()
    yield fake
    fake.stop()


def groq_toml(fake, extra: str = "") -> str:
    return f"""
[[providers]]
id = "groq"
name = "Groq"
dialect = "openai"
endpoint = "{fake.url}"
api_key_env = "GROQ_TEST_KEY"
{extra}

[[providers.models]]
id = "llama-3.3-70b-versatile"
name = "Llama 3.3 70B"
context_window = 131072
max_output = 32768
input_per_1m = "0.59"
output_per_1m = "0.79"
"""


@pytest.fixture
def providers_file(tmp_path, settings, monkeypatch):
    """Point LLMHUB_PROVIDERS_FILE at a file of the test's; the registry forgets it afterwards."""
    path = tmp_path / "providers.toml"
    settings.LLMHUB_PROVIDERS_FILE = str(path)
    monkeypatch.setenv("GROQ_TEST_KEY", GROQ_KEY)
    yield path
    settings.LLMHUB_PROVIDERS_FILE = ""
    registry.reload()


@pytest.mark.django_db
def test_a_file_provider_is_set_up_from_its_environment_variable(providers_file, fake_groq, alice_client):
    providers_file.write_text(groq_toml(fake_groq))
    assert registry.reload() == ""
    groq = Provider.objects.get(pk="groq")
    assert groq.team is None and groq.enabled and groq.kind == "groq"
    assert groq.credentials() == {"api_key": GROQ_KEY}
    model = groq.models.get().current_price()
    assert (model.input_per_1m, model.source) == (Decimal("0.59"), "config")
    assert 'id="kind-groq"' in alice_client.get("/providers/connect/").content.decode()
    assert "Groq" in alice_client.get("/providers/settings/").content.decode()


@pytest.mark.django_db(transaction=True)
async def test_a_file_provider_runs_with_streaming_cost_and_budget(providers_file, fake_groq, alice, alpha):
    providers_file.write_text(groq_toml(fake_groq))
    assert await sync_to_async(registry.reload)() == ""
    await registry.validate("groq")
    await Budget.objects.acreate(provider_id="groq", monthly_limit_usd=Decimal("1"))
    run = await sync_to_async(runs.create_run)(
        alice, alpha, "groq/llama-3.3-70b-versatile", [Message("user", "Hi")], 100
    )
    text = ""
    async for event in runs.stream(run):
        if isinstance(event, Delta):
            text += event.text
        elif isinstance(event, Ended):
            run = event.run
    assert run.status == Run.Status.COMPLETED and text == fake_groq.reply_text
    usage = await UsageRecord.objects.aget(run_id=str(run.uuid))
    expected = (Decimal("0.59") * usage.input_tokens + Decimal("0.79") * usage.output_tokens) / 1_000_000
    assert usage.cost_usd == expected == run.cost_usd
    assert fake_groq.last_request.path == "/openai/v1/chat/completions"


@pytest.mark.django_db(transaction=True)
async def test_a_server_that_wants_its_key_elsewhere_gets_it_there(providers_file, fake_groq):
    fake_groq.auth_header, fake_groq.auth_scheme = "api-key", ""
    providers_file.write_text(groq_toml(fake_groq, 'auth_header = "api-key"\nauth_scheme = ""'))
    assert await sync_to_async(registry.reload)() == ""
    adapter = await registry.aget("groq")
    response = await adapter.generate(GenerationRequest("llama-3.3-70b-versatile", (Message("user", "Hi"),)))
    assert response.content == fake_groq.reply_text
    assert fake_groq.last_request.headers["api-key"] == GROQ_KEY
    assert "authorization" not in fake_groq.last_request.headers


@pytest.mark.django_db
def test_a_keyless_local_server_needs_no_key(providers_file):
    fake = FakeOpenAI(api_keys={""})
    fake.models = ["qwen2.5-7b-instruct"]
    fake.start()
    try:
        providers_file.write_text(f"""
[[providers]]
id = "lm-studio"
name = "LM Studio"
dialect = "openai"
endpoint = "{fake.url}"
key_required = false

[[providers.models]]
id = "qwen2.5-7b-instruct"
context_window = 32768
max_output = 8192
input_per_1m = "0"
output_per_1m = "0"
""")
        assert registry.reload() == ""
        assert Provider.objects.get(pk="lm-studio").credentials() == {}
        kind = registry.kind("lm-studio")
        assert not next(f for f in registry.credential_fields(kind) if f.name == "api_key").required
    finally:
        fake.stop()


@pytest.mark.django_db
def test_a_malformed_file_is_reported_and_changes_nothing(providers_file, fake_groq):
    providers_file.write_text(groq_toml(fake_groq))
    registry.reload()
    providers_file.write_text(groq_toml(fake_groq).replace('input_per_1m = "0.59"', "input_per_1m = 0.59"))
    error = registry.reload()
    assert error == (
        f'{providers_file}:15: providers[1] "groq" models[1]: input_per_1m must be a string such '
        'as "0.59", not 0.59'
    )
    assert "groq" in [kind.id for kind in registry.kinds()]  # the running set stayed
    assert registry.file_error == error


@pytest.mark.django_db
def test_files_in_providers_d_are_read_and_an_id_is_defined_once(providers_file, fake_groq):
    providers_file.write_text("")
    (providers_file.parent / "providers.d").mkdir()
    (providers_file.parent / "providers.d" / "groq.toml").write_text(groq_toml(fake_groq))
    assert registry.reload() == ""
    assert "groq" in [kind.id for kind in registry.kinds()]
    (providers_file.parent / "providers.d" / "again.toml").write_text(groq_toml(fake_groq))
    error = registry.reload()  # files are read in name order: again.toml first
    assert 'groq.toml: "groq": already defined in' in error and error.endswith("again.toml")
    (providers_file.parent / "providers.d" / "again.toml").write_text(
        groq_toml(fake_groq).replace('"groq"', '"openai"')
    )
    assert '"openai": already defined in the built-in providers' in registry.reload()


def test_the_reload_command_exits_1_on_a_bad_file(tmp_path):
    bad = tmp_path / "providers.toml"
    bad.write_text('[[providers]]\nid = "x"\ndialect = "openapi"\nendpoint = "http://127.0.0.1:9/v1"\n')
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "manage.py", "providers_reload"],
        cwd=root,
        capture_output=True,
        text=True,
        env={
            **__import__("os").environ,
            "LLMHUB_PROVIDERS_FILE": str(bad),
            "LLMHUB_DATA_DIR": str(tmp_path / "data"),
        },
        timeout=60,
    )
    assert result.returncode == 1
    assert "providers.toml:3: providers[1] \"x\": dialect 'openapi' is not one of" in result.stderr
    assert "Nothing was changed" in result.stderr


@pytest.mark.django_db
def test_only_staff_reload_from_the_page(alice_client, admin_client, providers_file, fake_groq):
    providers_file.write_text(groq_toml(fake_groq))
    assert alice_client.post("/providers/settings/reload/").status_code == 403
    assert admin_client.post("/providers/settings/reload/").status_code == 302
    assert Provider.objects.filter(pk="groq").exists()
