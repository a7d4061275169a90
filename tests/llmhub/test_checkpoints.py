"""A server's SQLite write-ahead log is copied back into the database file by a periodic job of the
server (llmhub/sqlite/checkpoints.py), within a second or so, not by the request whose commit finds
the log full (one request in about a hundred paid a few milliseconds for it)."""

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
assert checkpoints.needed(connection.settings_dict)
checkpoints.enable()
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


# A database that cannot be checkpointed (a file that is not a database), then one that can, for
# the job as the server runs it.
FAILING = """
import asyncio, pathlib, sqlite3
import django
django.setup()
from django.db import connection
from llmhub.sqlite import checkpoints

path = pathlib.Path(connection.settings_dict["NAME"])
path.write_bytes(b"not a database" * 100)

async def turns(count):
    for _ in range(count):
        await checkpoints.checkpoint()

asyncio.run(turns(3))
connection.close()
path.unlink()
with sqlite3.connect(path) as made:
    made.execute("PRAGMA journal_mode=WAL")
asyncio.run(turns(3))
"""


def test_a_checkpoint_that_keeps_failing_is_logged_once_and_its_end_too(tmp_path):
    env = os.environ | {"DJANGO_SETTINGS_MODULE": "llmhub.settings", "LLMHUB_DATA_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", FAILING], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "Checkpointing the database" in line]
    assert len(said) == 2, done.stderr
    assert said[0].endswith("Checkpointing the database failed; trying again every 1.0 s")
    assert said[1].endswith("Checkpointing the database works again")
    assert "file is not a database" in done.stderr  # the first failure's traceback
