"""The test suite itself: it never touches a database that is not a test database."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def test_tests_that_need_no_database_leave_the_real_audit_guard_locked(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMHUB_", "DATABASE_URL"))}
    env |= {"LLMHUB_DATA_DIR": str(tmp_path), "LLMHUB_STATIC_ROOT": str(settings.STATIC_ROOT)}
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env | {"DJANGO_SETTINGS_MODULE": "llmhub.settings"},
    )
    assert migrate.returncode == 0, migrate.stderr
    # A selection of tests none of which asks for a database.
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/providers/test_crypto.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    with sqlite3.connect(tmp_path / "llmhub.sqlite3") as db:
        assert db.execute("SELECT locked FROM audit_guard").fetchone() == (1,)
