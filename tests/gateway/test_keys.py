"""Team API keys in the UI and on the command line: shown once, stored hashed, revocable, audited."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import AuditEntry
from gateway import keys
from gateway.models import ApiKey
from providers.base import TokenCount
from providers.registry import registry
from tests.conftest import GOOD_KEYS, database_url_for_subprocesses
from usage.models import Budget
from usage.records import record_usage

pytestmark = pytest.mark.django_db


def test_an_admin_creates_a_key_that_is_shown_once_and_stored_hashed(alice_client, alpha, fake_openai):
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    page = alice_client.post(
        "/settings/api-keys/",
        {"name": "CI", "allowed_models": ["openai/gpt-4o-mini"], "monthly_limit_usd": "5"},
        follow=True,
    ).content.decode()
    secret = re.search(r"llmh-[A-Za-z0-9_-]{40,}", page).group(0)
    key = ApiKey.objects.get()
    assert key.digest == hashlib.sha256(secret.encode()).hexdigest() and secret not in str(vars(key))
    assert key.allowed_models == ["openai/gpt-4o-mini"] and key.budget.monthly_limit_usd == 5
    again = alice_client.get("/settings/api-keys/").content.decode()
    assert secret not in again and f"llmh-...{secret[-4:]}" in again
    created = AuditEntry.objects.get(action="api_key_created")
    assert secret not in str(created.after) and created.after["masked_key"] == key.masked


def test_revoking_is_audited_and_refuses_the_key(alice_client, alpha):
    new = keys.create(alpha, "old script")
    assert keys.authenticate(new.secret) == new.key
    alice_client.post(f"/settings/api-keys/{new.key.pk}/revoke/")
    assert keys.authenticate(new.secret) is None
    revoked = AuditEntry.objects.get(action="api_key_revoked")
    assert revoked.actor_name == "alice" and revoked.after["revoked"] is True
    assert "revoked" in alice_client.get("/settings/api-keys/").content.decode()


def test_a_change_to_a_used_keys_team_counts_at_its_next_request(alpha):
    new = keys.create(alpha, "script")
    assert keys.authenticate(new.secret).team.tokens_per_minute is None
    alpha.tokens_per_minute = 1000
    alpha.save(update_fields=["tokens_per_minute"])
    assert keys.authenticate(new.secret).team.tokens_per_minute == 1000


def test_a_request_that_changes_its_key_leaves_the_next_ones_alone(alpha):
    new = keys.create(alpha, "script")
    first = keys.authenticate(new.secret)
    first.name, first.team.name = "changed", "changed"
    again = keys.authenticate(new.secret)
    assert (again.name, again.team.name) == ("script", "Alpha")


def test_members_and_other_teams_cannot_touch_keys(bob_client, charlie_client, alpha):
    new = keys.create(alpha, "team key")
    assert bob_client.get("/settings/api-keys/").status_code == 403
    assert charlie_client.post(f"/settings/api-keys/{new.key.pk}/revoke/").status_code == 404
    assert ApiKey.objects.get().active


def test_last_used_is_recorded_without_a_write_per_request(alpha):
    new = keys.create(alpha, "busy")
    keys.authenticate(new.secret)
    first = ApiKey.objects.get().last_used_at
    keys.authenticate(new.secret)
    assert first is not None and ApiKey.objects.get().last_used_at == first


def test_the_command_prints_the_key_once(tmp_path, alpha, settings):
    root = Path(__file__).resolve().parents[2]
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": database_url_for_subprocesses(),
        "LLMHUB_DATA_DIR": str(settings.DATA_DIR),
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "create_api_key", "--team", "Nope", "--name", "x"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "No team 'Nope'" in done.stderr


@pytest.mark.django_db(transaction=True)
def test_the_command_creates_a_key_in_the_database(settings, alpha):
    root = Path(__file__).resolve().parents[2]
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": database_url_for_subprocesses(),
        "LLMHUB_DATA_DIR": str(settings.DATA_DIR),
    }
    done = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "create_api_key",
            "--team",
            "Alpha",
            "--name",
            "CI",
            "--model",
            "default",
            "--rpm",
            "60",
            "--tpm",
            "100000",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    secret = done.stdout.strip()
    key = keys.authenticate(secret)
    assert key.allowed_models == ["default"]
    assert (key.requests_per_minute, key.tokens_per_minute) == (60, 100_000)
    assert secret not in done.stderr and "shown only now" in done.stderr


@pytest.mark.parametrize("value", ["0", "-5", "1.5", "many"])
def test_the_command_refuses_a_rate_limit_that_is_not_a_whole_number(alpha, value):
    with pytest.raises(CommandError, match=f"argument --rpm: '{re.escape(value)}' is not a whole number"):
        call_command("create_api_key", "--team", "Alpha", "--name", "CI", f"--rpm={value}")
    assert not ApiKey.objects.exists()


def test_spend_filters_by_key(alice_client, alpha, fake_openai):
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    ci, notebook = keys.create(alpha, "CI").key, keys.create(alpha, "notebook").key
    record_usage("openai", "gpt-4o", TokenCount(1_000_000, 0), "api", team=alpha, api_key=ci)  # $2.50
    record_usage("openai", "gpt-4o", TokenCount(0, 1_000_000), "api", team=alpha, api_key=notebook)  # $10
    page = alice_client.get(f"/spend/?key={ci.pk}").content.decode()
    assert "$2.50 in the range shown" in page
    csv = b"".join(alice_client.get(f"/spend/usage.csv?key={notebook.pk}").streaming_content).decode()
    assert csv.count("\n") == 2 and csv.strip().endswith(",api,notebook,generation")
    Budget.objects.create(team=alpha, api_key=ci, monthly_limit_usd=3)
    assert "API key CI" in alice_client.get("/spend/").content.decode()


def test_made_up_addresses_do_not_fill_the_failure_table(monkeypatch):
    monkeypatch.setattr(keys, "FAILURE_TABLE_SIZE", 50)
    monkeypatch.setattr(keys, "FAILURE_WINDOW_SECONDS", 0.0)  # every earlier failure is stale
    keys._failures.clear()
    for n in range(200):
        keys.note_failure(f"10.0.{n // 256}.{n % 256}")
    assert len(keys._failures) <= 50
