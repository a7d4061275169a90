"""A server's SQLite write-ahead log is copied back into the database file by a thread of the server
(llmhub/sqlite/checkpoints.py), within a second or so, not by the request whose commit finds the log
full (one request in about a hundred paid a few milliseconds for it)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.db import connection

from gateway import keys
from providers.registry import registry
from tests.conftest import GOOD_KEYS

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
ASK = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 16}


def usage_rows_in_the_database_file(tmp_path) -> int | None:
    """The usage rows the database file holds on its own, without its write-ahead log: what has
    been checkpointed. None while a checkpoint is half written in the copy."""
    alone = tmp_path / "alone.sqlite3"
    shutil.copyfile(connection.settings_dict["NAME"], alone)
    try:
        with sqlite3.connect(alone) as copy:
            return copy.execute("SELECT COUNT(*) FROM usage_usagerecord").fetchone()[0]
    except sqlite3.DatabaseError:
        return None
    finally:
        alone.unlink()


def test_the_servers_writes_reach_the_database_file_within_seconds(hub_url, alpha, fake_openai, tmp_path):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's write-ahead log")
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    auth = {"authorization": f"Bearer {keys.create(alpha, 'checkpoints').secret}"}
    with connection.cursor() as cursor:  # the log empty: five requests are far from filling it
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert usage_rows_in_the_database_file(tmp_path) == 0
    for _ in range(5):
        assert (
            httpx.post(f"{hub_url}/v1/chat/completions", json=ASK, headers=auth, timeout=30).status_code
            == 200
        )
    deadline = time.monotonic() + 5
    while (found := usage_rows_in_the_database_file(tmp_path)) != 5 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert found == 5


# A process's connections, as Django opens them, before and after it starts checkpointing.
CONNECTIONS = """
import django
django.setup()
from django.db import connection
from llmhub.sqlite import checkpoints

def autocheckpoint():
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_autocheckpoint")
        return cursor.fetchone()[0]

before = autocheckpoint()
checkpoints.start_for(connection.settings_dict)
print(before, autocheckpoint())
"""


def test_once_the_process_checkpoints_its_connections_commits_do_not(tmp_path):
    env = os.environ | {"DJANGO_SETTINGS_MODULE": "llmhub.settings", "LLMHUB_DATA_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", CONNECTIONS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1000", "0"]  # SQLite's default, then none


# A database file that cannot be checkpointed (not a database), then one that can.
FAILING = """
import logging, pathlib, sqlite3, sys, time
from llmhub.sqlite import checkpoints

logging.basicConfig(stream=sys.stdout, format="%(levelname)s %(message)s")
path = pathlib.Path(sys.argv[1])
path.write_bytes(b"not a database" * 100)
checkpoints.start(str(path), period=0.02)
time.sleep(0.5)
path.unlink()
time.sleep(0.2)
assert not path.exists(), "the checkpoints made a database file that had gone"
with sqlite3.connect(path) as made:
    made.execute("PRAGMA journal_mode=WAL")
time.sleep(0.3)
"""


def test_a_checkpoint_that_keeps_failing_is_logged_once_and_its_end_too(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", FAILING, str(tmp_path / "db.sqlite3")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stdout.splitlines() if line.startswith(("ERROR", "WARNING"))]
    assert len(said) == 2, done.stdout
    assert said[0].startswith("ERROR Checkpointing") and "failed; trying again every 0.02 s" in said[0]
    assert said[1].startswith("WARNING Checkpointing") and said[1].endswith("works again")
    assert "file is not a database" in done.stdout  # the first failure's traceback
