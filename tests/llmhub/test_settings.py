"""Settings are read in fresh processes: each test starts Django with its own environment."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from llmhub.environment import envbool, read_or_create_secret_file

ROOT = Path(__file__).resolve().parents[2]


def django(tmp_path: Path, code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("LLMHUB_", "DATABASE_URL", "REDIS_URL"))
    }
    environment.update(
        {"LLMHUB_DATA_DIR": str(tmp_path / "data"), "DJANGO_SETTINGS_MODULE": "llmhub.settings"}, **env
    )
    script = f"import django; django.setup(); {code}"
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


def test_a_first_start_creates_the_data_folder_with_private_keys(tmp_path):
    result = django(
        tmp_path, "from django.core.management import call_command; call_command('migrate', verbosity=0)"
    )
    assert result.returncode == 0, result.stderr
    data = tmp_path / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    with sqlite3.connect(data / "llmhub.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.execute("SELECT count(*) FROM django_migrations")  # open: the WAL and SHM files exist
        for name in ("secret_key", "llmhub.sqlite3", "llmhub.sqlite3-wal", "llmhub.sqlite3-shm"):
            assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    # The encryption key comes with the first credential saved (tests/llmhub/test_keys_and_modes.py).
    assert not (data / "encryption.key").exists()


def test_generated_keys_survive_a_restart(tmp_path):
    first = django(
        tmp_path, "from django.conf import settings as s; print(s.SECRET_KEY, s.LLMHUB_ENCRYPTION_KEYS)"
    )
    second = django(
        tmp_path, "from django.conf import settings as s; print(s.SECRET_KEY, s.LLMHUB_ENCRYPTION_KEYS)"
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout


def test_encryption_keys_from_the_environment_replace_the_key_file(tmp_path):
    result = django(
        tmp_path,
        "from django.conf import settings as s; print(len(s.LLMHUB_ENCRYPTION_KEYS))",
        LLMHUB_ENCRYPTION_KEYS="a1,b2",
    )
    assert result.stdout.strip() == "2"
    assert not (tmp_path / "data" / "encryption.key").exists()


def test_database_url_switches_to_postgresql(tmp_path):
    code = "from django.conf import settings as s; d = s.DATABASES['default']; print(d['ENGINE'], d['NAME'], d['HOST'])"
    result = django(tmp_path, code, DATABASE_URL="postgres://hub:pw@127.0.0.1:5433/llmhub")
    assert result.stdout.split() == ["llmhub.postgresql", "llmhub", "127.0.0.1"]


def test_kept_postgresql_connections_prepare_statements_and_connections_closed_after_use_do_not(tmp_path):
    """Prepared statements live on one server connection: with LLMHUB_DB_CONN_MAX_AGE=0 (behind
    pgbouncer in transaction mode) the next transaction may be on another one."""
    code = "from django.conf import settings as s; print(s.DATABASES['default']['OPTIONS'].get('prepare_threshold'))"
    url = "postgres://hub:pw@127.0.0.1:5433/llmhub"
    assert django(tmp_path, code, DATABASE_URL=url).stdout.split() == ["0"]
    closed = django(tmp_path, code, DATABASE_URL=url, LLMHUB_DB_CONN_MAX_AGE="0")
    assert closed.stdout.split() == ["None"]


def test_redis_url_switches_the_channel_layer(tmp_path):
    code = "from django.conf import settings as s; print(s.CHANNEL_LAYERS['default']['BACKEND'])"
    assert django(tmp_path, code).stdout.strip() == "channels.layers.InMemoryChannelLayer"
    redis = django(tmp_path, code, REDIS_URL="redis://127.0.0.1:6390/0")
    assert redis.stdout.strip() == "channels_redis.core.RedisChannelLayer"


def test_a_malformed_setting_names_its_variable(tmp_path):
    result = django(tmp_path, "pass", DJANGO_DEBUG="maybe")
    assert result.returncode != 0
    assert "DJANGO_DEBUG must be one of" in result.stderr


def test_a_secret_file_is_created_once_with_mode_0600(tmp_path):
    path = tmp_path / "key"
    value = read_or_create_secret_file(path, kind="fernet")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_or_create_secret_file(path, kind="fernet") == value


def test_envbool_refuses_what_it_cannot_read(monkeypatch):
    monkeypatch.setenv("LLMHUB_SOMETHING", "sure")
    with pytest.raises(ImproperlyConfigured, match="LLMHUB_SOMETHING"):
        envbool("LLMHUB_SOMETHING", False)


def test_run_limits_are_seconds_and_a_lease_outlives_two_renewals(tmp_path, monkeypatch):
    from llmhub.environment import envseconds

    monkeypatch.setenv("LLMHUB_IDLE_TIMEOUT", "0.5")
    assert envseconds("LLMHUB_IDLE_TIMEOUT", 600) == 0.5
    for bad in ("soon", "0", "-3"):
        monkeypatch.setenv("LLMHUB_IDLE_TIMEOUT", bad)
        with pytest.raises(ImproperlyConfigured, match="LLMHUB_IDLE_TIMEOUT must be a number of seconds"):
            envseconds("LLMHUB_IDLE_TIMEOUT", 600)
    result = django(tmp_path, "", LLMHUB_RUN_LEASE_SECONDS="20", LLMHUB_LEASE_RENEW_SECONDS="15")
    assert "LLMHUB_LEASE_RENEW_SECONDS must be at most half of LLMHUB_RUN_LEASE_SECONDS" in result.stderr
