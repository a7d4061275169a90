"""A lost or wrong encryption key, and the data folder's file modes: real processes on a fresh data
folder, as an operator meets them."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.conftest import GOOD_KEYS

ROOT = Path(__file__).resolve().parents[2]


class Hub:
    def __init__(self, data: Path) -> None:
        self.data = data
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("LLMHUB_", "DATABASE_URL", "DJANGO_"))
        }
        self.env |= {"LLMHUB_DATA_DIR": str(data), "DJANGO_SETTINGS_MODULE": "llmhub.settings"}

    def manage(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env | env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def add_provider(self, **env: str) -> subprocess.CompletedProcess:
        return self.manage(
            "provider_add",
            "openai",
            "--credential-env",
            "api_key=HUB_KEY",
            HUB_KEY=GOOD_KEYS["openai"],
            **env,
        )


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> Path:
    template = Hub(tmp_path_factory.mktemp("template") / "data")
    assert template.manage("migrate", "-v0").returncode == 0
    return template.data


@pytest.fixture
def hub(tmp_path, migrated) -> Hub:
    """A fresh, migrated data folder (copied: migrating each time would take seconds)."""
    shutil.copytree(migrated, tmp_path / "data")
    return Hub(tmp_path / "data")


def test_the_key_file_is_made_with_the_first_credential(hub):
    assert not (hub.data / "encryption.key").exists()
    assert hub.add_provider().returncode == 0
    assert stat.S_IMODE((hub.data / "encryption.key").stat().st_mode) == 0o600


def test_a_lost_key_file_is_an_error_that_names_what_to_restore_never_a_new_key(hub):
    assert hub.add_provider().returncode == 0
    (hub.data / "encryption.key").unlink()
    for command in (("check",), ("migrate", "-v0")):  # `make run` migrates before it serves
        result = hub.manage(*command)
        assert result.returncode != 0, command
        assert str(hub.data / "encryption.key") in result.stderr and "LLMHUB_ENCRYPTION_KEYS" in result.stderr
    refused = hub.add_provider()  # a new credential would be encrypted with a key nobody has
    assert refused.returncode != 0 and "LLMHUB_ENCRYPTION_KEYS" in refused.stderr
    assert not (hub.data / "encryption.key").exists()


def test_a_wrong_key_in_the_environment_is_refused_too(hub):
    assert hub.add_provider().returncode == 0
    result = hub.manage("check", LLMHUB_ENCRYPTION_KEYS=Fernet.generate_key().decode())
    assert result.returncode != 0 and "llmhub.E001" in result.stderr


def test_a_key_lost_for_good_is_recovered_from_by_forgetting_the_credentials(hub):
    assert hub.add_provider().returncode == 0
    (hub.data / "encryption.key").unlink()
    forgotten = hub.manage("forget_credentials", "--unreadable")
    assert forgotten.returncode == 0, forgotten.stderr
    assert "Removed the unreadable credentials of openai" in forgotten.stdout
    assert hub.manage("check").returncode == 0
    assert hub.add_provider().returncode == 0  # a new key file, for the key entered again


def test_rotation_is_audited(hub):
    assert hub.add_provider().returncode == 0
    old = (hub.data / "encryption.key").read_text().strip()
    new = Fernet.generate_key().decode()
    assert hub.manage("rotate_credentials", LLMHUB_ENCRYPTION_KEYS=f"{new},{old}").returncode == 0
    with sqlite3.connect(hub.data / "llmhub.sqlite3") as db:
        rows = db.execute(
            "SELECT actor_name, object_id FROM audit_auditentry WHERE action = 'credentials_rotated'"
        )
        assert rows.fetchall() == [("manage.py rotate_credentials", "openai")]


def test_a_data_folder_others_can_read_is_warned_about(hub):
    hub.data.chmod(0o755)
    (hub.data / "llmhub.sqlite3").chmod(0o644)
    result = hub.manage("check")
    assert "llmhub.W001" in result.stderr and f"chmod 700 {hub.data}" in result.stderr
    assert f"chmod 600 {hub.data / 'llmhub.sqlite3'}" in result.stderr
