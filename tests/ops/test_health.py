"""/healthz and /readyz: they answer, and readiness fails for each thing a process cannot serve without."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from tests.conftest import GOOD_KEYS
from tests.ops.conftest import ROOT, free_port

pytestmark = pytest.mark.django_db


def readiness(client) -> tuple[int, dict]:
    response = client.get("/readyz")
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    return response.status_code, response.json()


def test_healthz_answers_even_before_the_first_admin_exists(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_is_ready_with_the_database_migrated_and_the_key_right(client, openai_provider):
    status, report = readiness(client)
    assert status == 200 and report["ready"] is True
    assert {name: check["ok"] for name, check in report["checks"].items()} == {
        "database": True,
        "migrations": True,
        "credentials": True,
        "channel_layer": True,
    }


def test_readyz_fails_when_the_key_cannot_read_the_credentials(client, openai_provider, settings):
    settings.LLMHUB_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    status, report = readiness(client)
    assert status == 503 and report["ready"] is False
    check = report["checks"]["credentials"]
    assert (
        check["ok"] is False and "(openai)" in check["detail"] and "LLMHUB_ENCRYPTION_KEYS" in check["detail"]
    )
    assert GOOD_KEYS["openai"] not in json.dumps(report)


def test_readyz_fails_when_redis_does_not_answer(client, settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{free_port()}/0"]},
        }
    }
    settings.LLMHUB_READY_TIMEOUT = 3
    status, report = readiness(client)
    assert status == 503
    assert report["checks"]["channel_layer"] == {
        "ok": False,
        "detail": "The channel layer (REDIS_URL) does not answer.",
    }
    assert report["checks"]["database"]["ok"] is True


def test_readyz_is_ready_with_a_redis_that_answers(client, settings, redis_url):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [redis_url]}}
    }
    status, report = readiness(client)
    assert status == 200 and report["checks"]["channel_layer"]["ok"] is True


def in_fresh_process(tmp_path, code: str, **env: str) -> dict:
    """Run `code` in a new Django process on its own data folder; it prints /readyz's answer."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("LLMHUB_", "DATABASE_URL"))}
    environment.update(
        LLMHUB_DATA_DIR=str(tmp_path / "data"), DJANGO_SETTINGS_MODULE="llmhub.settings", **env
    )
    script = (
        "import django, json; django.setup()\n"
        "from django.core.management import call_command\n"
        f"{code}\n"
        "from django.test import Client\n"
        "r = Client().get('/readyz'); print(json.dumps({'status': r.status_code, **r.json()}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_readyz_fails_on_a_database_with_unapplied_migrations(tmp_path):
    report = in_fresh_process(
        tmp_path,
        "call_command('migrate', verbosity=0); call_command('migrate', 'usage', '0007', verbosity=0)",
    )
    assert report["status"] == 503
    check = report["checks"]["migrations"]
    assert check["ok"] is False and "usage.0012_run_and_usage_request_id" in check["detail"]
    assert "manage.py migrate" in check["detail"]
    assert report["checks"]["credentials"]["ok"] is False  # not checked against missing tables
    assert report["checks"]["database"]["ok"] is True


def test_readyz_fails_when_the_database_does_not_answer(tmp_path):
    url = f"postgres://llmhub:not-the-password@127.0.0.1:{free_port()}/llmhub"
    report = in_fresh_process(tmp_path, "", DATABASE_URL=url)
    assert report["status"] == 503
    assert report["checks"]["database"] == {"ok": False, "detail": "The database does not answer."}
    assert "not-the-password" not in json.dumps(report)
