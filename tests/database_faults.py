"""Making the test database refuse writes the ways a real one does, for as long as a block runs.

SQLite: another connection holds the write lock (`BEGIN EXCLUSIVE`), so our writes give up after the
busy timeout (the `database_faults` fixture makes that 0.3 s), or the file is made read-only.
PostgreSQL: the database turns read-only and every connection to it is cut, as in a fail-over.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections


async def reopen_connections() -> None:
    """Close the shared sync thread's connections, so they reopen when next used (with the current
    options, or after the database came back). Worker threads reopen theirs on their own."""
    await sync_to_async(connections.close_all)()


@asynccontextmanager
async def writes_refused() -> AsyncIterator[None]:
    """Every write to the test database fails until the block ends."""
    await reopen_connections()
    if connection.vendor == "sqlite":
        holder = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    else:
        _postgres_read_only(True)
        try:
            yield
        finally:
            _postgres_read_only(False)
    await reopen_connections()


# The test thread's own connection (set by the `database_faults` fixture): the test framework
# cleans up with it, so it is never cut.
spared_pid = 0


def _postgres_read_only(on: bool) -> None:
    import psycopg

    db = connection.settings_dict
    params = {"host": db["HOST"], "port": db["PORT"], "user": db["USER"], "dbname": db["NAME"]}
    params = {k: v for k, v in params.items() if v} | {"password": db["PASSWORD"] or None}
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute("SET default_transaction_read_only = off")  # this session may undo it
        setting = "SET default_transaction_read_only = on" if on else "RESET default_transaction_read_only"
        admin.execute(f'ALTER DATABASE "{db["NAME"]}" {setting}')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> %s",
            [spared_pid],
        )


@contextmanager
def sqlite_file_read_only(path: Path | str) -> Iterator[None]:
    """The database file (and its write-ahead log) cannot be written: `chattr +i` as root, who
    ignores permissions, else chmod. Connections opened meanwhile open it read-only."""
    files = [p for p in (Path(path), Path(f"{path}-wal")) if p.exists()]
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip("running as root without chattr: the database cannot be made read-only")
        made = subprocess.run(["chattr", "+i", *map(str, files)], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"chattr +i is not allowed here: {made.stderr.strip()}")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", *map(str, files)], check=True)
    else:
        modes = {p: p.stat().st_mode for p in files}
        for p in files:
            p.chmod(0o444)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
