"""The command line end to end: real `manage.py` processes on a fresh data folder, fake providers."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from providers.pricing import library_price
from tests.conftest import BAD_KEY, GOOD_KEYS

ROOT = Path(__file__).resolve().parents[2]
USAGE_LINE = re.compile(r"^Input tokens: (\d+) · output tokens: (\d+) · cost: \$([0-9.]+)$", re.M)


class Hub:
    """A fresh LLMHub data folder, driven through manage.py as an admin would."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMHUB_", "DATABASE_URL"))}
        self.env["LLMHUB_DATA_DIR"] = str(data)
        self.manage("migrate", "--noinput", "-v0")
        self.add_team("Ops")

    def manage(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def add_team(self, name: str) -> None:
        """A team as a first admin's set-up leaves it (what manage.py commands then act for)."""
        self.execute(
            "insert into accounts_team"
            " (name, default_model, run_visibility, stored_response_retention_days, created_at)"
            f" values ('{name}', '', 'own', 30, datetime('now'))"
        )

    def query(self, sql: str) -> list[tuple]:
        with sqlite3.connect(self.data / "llmhub.sqlite3") as db:
            return db.execute(sql).fetchall()

    def execute(self, sql: str) -> None:
        with sqlite3.connect(self.data / "llmhub.sqlite3") as db:
            db.execute(sql)

    def database_bytes(self) -> bytes:
        return b"".join(p.read_bytes() for p in self.data.glob("llmhub.sqlite3*"))


@pytest.fixture
def hub(tmp_path) -> Hub:
    return Hub(tmp_path / "data")


def add(hub: Hub, kind: str, fake, key: str) -> subprocess.CompletedProcess:
    return hub.manage(
        "provider_add",
        kind,
        "--endpoint",
        fake.url,
        "--credential-env",
        "api_key=HUB_TEST_KEY",
        HUB_TEST_KEY=key,
    )


def test_provider_add_reads_the_key_from_the_environment_and_stores_it_encrypted(hub, fake_openai):
    result = add(hub, "openai", fake_openai, GOOD_KEYS["openai"])
    assert result.returncode == 0, result.stderr
    assert "Saved OpenAI as provider 'openai' (key sk-...vX2Q), 7 models" in result.stdout
    assert GOOD_KEYS["openai"] not in result.stdout + result.stderr
    assert hub.query("select id, endpoint from providers_provider") == [("openai", fake_openai.url)]
    assert GOOD_KEYS["openai"].encode() not in hub.database_bytes()
    assert b"good-key" not in hub.database_bytes()


def test_provider_add_names_a_missing_environment_variable(hub):
    result = hub.manage("provider_add", "openai", "--credential-env", "api_key=NOT_SET_ANYWHERE")
    assert result.returncode == 1
    assert "Environment variable NOT_SET_ANYWHERE is not set (for api_key)" in result.stderr
    assert hub.query("select count(*) from providers_provider") == [(0,)]


def test_provider_add_takes_a_custom_id_and_name(hub, fake_anthropic):
    result = hub.manage(
        "provider_add",
        "anthropic",
        "--id",
        "claude-eu",
        "--name",
        "Claude (EU)",
        "--endpoint",
        fake_anthropic.url,
        "--credential-env",
        "api_key=K",
        K=GOOD_KEYS["anthropic"],
    )
    assert result.returncode == 0, result.stderr
    assert hub.query("select id, display_name, kind from providers_provider") == [
        ("claude-eu", "Claude (EU)", "anthropic")
    ]


def test_provider_test_succeeds_with_a_good_key(hub, fake_anthropic):
    add(hub, "anthropic", fake_anthropic, GOOD_KEYS["anthropic"])
    result = hub.manage("provider_test", "anthropic")
    assert result.returncode == 0, result.stderr
    assert "✓ Anthropic: connection and credentials work." in result.stdout
    assert hub.query("select last_validated_at is not null from providers_provider") == [(1,)]


def test_provider_test_prints_the_user_facing_error_and_exits_1(hub, fake_openai):
    add(hub, "openai", fake_openai, BAD_KEY)
    result = hub.manage("provider_test", "openai")
    assert result.returncode == 1
    assert result.stderr.strip() == "Your OpenAI API key is invalid. Please check and try again."
    assert BAD_KEY not in result.stdout + result.stderr


def test_provider_test_exits_1_for_an_unreachable_provider(hub, fake_openai):
    add(hub, "openai", fake_openai, GOOD_KEYS["openai"])
    fake_openai.stop()
    result = hub.manage("provider_test", "openai")
    assert result.returncode == 1
    assert f"Connection refused by {fake_openai.url}" in result.stderr


def test_provider_test_exits_1_for_an_unknown_provider(hub):
    result = hub.manage("provider_test", "nope")
    assert result.returncode == 1
    assert "No provider 'nope' is configured." in result.stderr


@pytest.mark.parametrize(
    ("kind", "fixture", "model", "pricing_provider"),
    [
        ("openai", "fake_openai", "gpt-4o", "openai"),
        ("anthropic", "fake_anthropic", "claude-sonnet-4-5", "anthropic"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_generate_prints_the_text_then_tokens_and_cost_and_records_usage(
    request, hub, kind, fixture, model, pricing_provider, stream
):
    fake = request.getfixturevalue(fixture)
    add(hub, kind, fake, GOOD_KEYS[kind])
    result = hub.manage(
        "generate",
        f"{kind}/{model}",
        "Write a haiku",
        "--max-tokens",
        "300",
        *(["--stream"] if stream else []),
    )
    assert result.returncode == 0, result.stderr
    text, _, last = result.stdout.rstrip("\n").rpartition("\n")
    assert text.strip() == fake.reply_text
    input_tokens, output_tokens, shown_cost = USAGE_LINE.match(last).groups()
    price = library_price(model, pricing_provider)
    expected = (price.input_per_1m * int(input_tokens) + price.output_per_1m * int(output_tokens)) / 1_000_000
    assert Decimal(shown_cost) == expected
    [(provider, used_model, tokens_in, tokens_out, cost, source, price_id)] = hub.query(
        "select provider_id, model, input_tokens, output_tokens, cost_usd, source, price_id from usage_usagerecord"
    )
    assert (provider, used_model, tokens_in, tokens_out, source) == (
        kind,
        model,
        int(input_tokens),
        int(output_tokens),
        "cli",
    )
    assert Decimal(str(cost)) == expected and price_id is not None
    assert fake.last_request.json["stream"] is True  # streamed from the provider either way
    assert hub.query("select status, model_used, output from usage_run") == [
        ("completed", f"{kind}/{model}", text.strip())
    ]


def test_generate_streams_text_as_it_arrives(hub, fake_openai):
    add(hub, "openai", fake_openai, GOOD_KEYS["openai"])
    fake_openai.chunk_delay = 0.01
    process = subprocess.Popen(
        [sys.executable, "manage.py", "generate", "openai/gpt-4o", "Hi", "--stream"],
        cwd=ROOT,
        env=hub.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    first = process.stdout.read(5)
    assert first and not fake_openai.streams_completed  # text arrived before the stream ended
    process.communicate(timeout=30)
    assert process.returncode == 0


def test_generate_refuses_an_unpriced_model_unless_told(hub, fake_openai):
    add(hub, "openai", fake_openai, GOOD_KEYS["openai"])
    with sqlite3.connect(hub.data / "llmhub.sqlite3") as db:
        db.execute("delete from providers_price where model_ref = 'openai/o1'")
    refused = hub.manage("generate", "openai/o1", "Think")
    assert refused.returncode == 1
    assert "openai/o1 has no known price" in refused.stderr
    allowed = hub.manage("generate", "openai/o1", "Think", "--allow-unpriced")
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.rstrip().endswith("cost: unpriced")
    assert hub.query("select cost_usd, price_id from usage_usagerecord") == [(None, None)]


def test_generate_explains_an_unknown_model_and_a_disabled_provider(hub, fake_openai):
    add(hub, "openai", fake_openai, GOOD_KEYS["openai"])
    unknown = hub.manage("generate", "openai/gpt-99", "Hi")
    assert unknown.returncode == 1
    assert (
        "OpenAI has no model 'gpt-99'. Known: gpt-4o, gpt-4o-mini, o1, o3-mini, text-embedding-3-large"
        in unknown.stderr
    )
    with sqlite3.connect(hub.data / "llmhub.sqlite3") as db:
        db.execute("update providers_provider set enabled = 0")
    disabled = hub.manage("generate", "openai/gpt-4o", "Hi")
    assert "Provider 'openai' is disabled." in disabled.stderr


def test_generate_prints_a_provider_failure_and_records_nothing(hub, fake_openai):
    add(hub, "openai", fake_openai, GOOD_KEYS["openai"])
    fake_openai.fail_next_as("quota_exceeded")
    result = hub.manage("generate", "openai/gpt-4o", "Hi")
    assert result.returncode == 1
    assert "You've hit your OpenAI usage cap." in result.stderr
    assert hub.query("select count(*) from usage_usagerecord") == [(0,)]


def test_rotate_credentials_re_encrypts_with_the_newest_key(hub, fake_openai):
    from cryptography.fernet import Fernet

    add(hub, "openai", fake_openai, GOOD_KEYS["openai"])  # the first stored key creates the key file
    old = (hub.data / "encryption.key").read_text().strip()
    new = Fernet.generate_key().decode()
    rotated = hub.manage("rotate_credentials", LLMHUB_ENCRYPTION_KEYS=f"{new},{old}")
    assert "Re-encrypted the credentials of 1 provider(s)" in rotated.stdout
    works = hub.manage("provider_test", "openai", LLMHUB_ENCRYPTION_KEYS=new)
    assert works.returncode == 0, works.stderr


def test_generate_is_refused_by_the_teams_budget(hub, fake_openai):
    add(hub, "openai", fake_openai, GOOD_KEYS["openai"])
    hub.execute("insert into usage_budget (team_id, monthly_limit_usd, alert_threshold) values (1, 0, 0.8)")
    result = hub.manage("generate", "openai/gpt-4o", "Hi")
    assert result.returncode == 1
    assert "Monthly Ops team budget: $0.00 of $0.00 left; this run may cost up to $" in result.stderr
    assert not [r for r in fake_openai.requests if r.path.endswith("/chat/completions")]
    assert hub.query("select status from usage_run") == [("failed",)]


def test_generate_stops_a_provider_at_the_cap(hub, fake_openai):
    add(hub, "openai", fake_openai, GOOD_KEYS["openai"])
    fake_openai.endless = True
    result = hub.manage("generate", "openai/gpt-4o", "Hi", "--max-tokens", "20")
    assert result.returncode == 0, result.stderr
    assert USAGE_LINE.search(result.stdout).group(2) == "20"
    assert hub.query("select output_tokens, source from usage_usagerecord") == [(20, "cli")]


def test_generate_falls_back_as_the_team_says(hub, fake_openai, fake_anthropic):
    add(hub, "openai", fake_openai, GOOD_KEYS["openai"])
    add(hub, "anthropic", fake_anthropic, GOOD_KEYS["anthropic"])
    hub.execute(
        'insert into usage_fallbackpolicy (team_id, enabled, "order", retry_count, ask_before_switching, '
        "max_total_wait_seconds) values (1, 1, '[\"anthropic/claude-haiku-4-5\"]', 0, 0, 120)"
    )
    fake_openai.fail_next_as("server_error")
    result = hub.manage("generate", "openai/gpt-4o", "Hi")
    assert result.returncode == 0, result.stderr
    assert fake_anthropic.reply_text in result.stdout
    assert hub.query(
        "select actor_name, action from audit_auditentry where action = 'fallback_triggered'"
    ) == [("command line", "fallback_triggered")]


def test_generate_needs_a_team_named_when_there_are_several(hub, fake_openai):
    add(hub, "openai", fake_openai, GOOD_KEYS["openai"])
    hub.add_team("Lab")
    several = hub.manage("generate", "openai/gpt-4o", "Hi")
    assert (
        several.returncode == 1
        and "There are several teams (Lab, Ops): name one with --team." in several.stderr
    )
    assert (
        hub.manage("generate", "openai/gpt-4o", "Hi", "--team", "Nope")
        .stderr.strip()
        .endswith("No team 'Nope'. Teams: Lab, Ops.")
    )
    chosen = hub.manage("generate", "openai/gpt-4o", "Hi", "--team", "Lab")
    assert chosen.returncode == 0, chosen.stderr
    assert hub.query("select t.name from usage_run r join accounts_team t on t.id = r.team_id") == [("Lab",)]
