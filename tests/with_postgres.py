"""Run a command against a throwaway PostgreSQL cluster on 127.0.0.1.

    python -m tests.with_postgres COMMAND [ARG ...]

`make test` runs the database-sensitive tests (budgets, runs, the API) a second time this way, so
the PostgreSQL path (row locks, the budget SQL) is tested as well as SQLite. The cluster lives in a
temporary folder, listens on a free port (fsync off: it is thrown away), gives the command
DATABASE_URL for its superuser, and is stopped and removed afterwards. PostgreSQL refuses to run as root:
as root, the server runs as the `postgres` user the Debian package creates.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from glob import glob
from pathlib import Path


def find_binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise SystemExit(f"PostgreSQL's {name} is not installed (Debian: apt-get install postgresql)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """A throwaway cluster, stopped and removed afterwards; yields the DATABASE_URL of its superuser."""
    initdb, pg_ctl, createdb = find_binary("initdb"), find_binary("pg_ctl"), find_binary("createdb")
    as_root = os.geteuid() == 0
    home = Path(tempfile.mkdtemp(prefix="llmhub-postgres-"))
    data, port = home / "data", free_port()

    def server(*args: str) -> None:
        if as_root:
            args = ("runuser", "-u", "postgres", "--", *args)
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)

    try:
        if as_root:
            shutil.chown(home, "postgres")
        server(initdb, "-D", str(data), "-A", "trust", "-U", "llmhub", "--no-sync")
        # Room for a connection per request of the load tests (hundreds at once; default 100).
        options = f"-h 127.0.0.1 -p {port} -k {home} -F -c max_connections=400"
        server(pg_ctl, "-D", str(data), "-w", "-l", str(home / "log"), "-o", options, "start")
        subprocess.run([createdb, "-h", "127.0.0.1", "-p", str(port), "-U", "llmhub", "llmhub"], check=True)
        yield f"postgres://llmhub@127.0.0.1:{port}/llmhub"
    finally:
        if (data / "postmaster.pid").exists():
            server(pg_ctl, "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(home, ignore_errors=True)


def main(command: list[str]) -> int:
    if not command:
        raise SystemExit(__doc__)
    with postgres_cluster() as url:
        # Connections kept, as the hub keeps them by default (prepared statements, the check of a
        # kept connection); LLMHUB_DB_CONN_MAX_AGE=0 in the environment runs as behind pgbouncer.
        env = {**os.environ, "DATABASE_URL": url}
        return subprocess.run(command, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
