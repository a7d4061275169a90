"""A server's SQLite write-ahead log, copied back into the database file by a thread of its own,
not by the requests.

SQLite does that copy (a checkpoint, which ends with an fsync of the database file) in the commit
that finds the log over 1,000 pages: on a server, one API request in about a hundred paid a few
milliseconds for it in its settlement. bench/gateway.py measured the added p99 at concurrency 1
at 7.7 to 8.3 ms with it, 3.4 to 4.6 ms without, the p50 unchanged (issue 16).

A server process (llmhub/server.py) starts this thread; every connection it opens from then on
commits without checkpointing (`wal_autocheckpoint=0`, set as it opens: llmhub/sqlite/base.py).
Every second the thread runs a PASSIVE checkpoint on a connection of its own: it waits for no
reader and no writer, copies what no reader still needs, and costs nothing when the log is empty.
sqlite3 lets go of the GIL while it works, so the event loop serves on meanwhile. A checkpoint that
fails is logged (once, and again when one works) and tried again a second later (a database file
that went away is not made again, empty, by it); the log grows meanwhile, as it would have with the
commits' checkpoints failing. Other processes (manage.py, the
command line) checkpoint as SQLite does by default, and the last connection to close checkpoints
whatever is left.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)

PERIOD_SECONDS = 1.0
_started = threading.Event()


def running() -> bool:
    """Whether this process checkpoints in its own thread (its connections then leave it to it)."""
    return _started.is_set()


def start_for(database: dict) -> threading.Thread | None:
    """start() for Django's database settings when they name an SQLite file (not PostgreSQL, not
    an in-memory database)."""
    name = str(database["NAME"])
    if database["ENGINE"] != settings.SQLITE_ENGINE or name == ":memory:" or "mode=memory" in name:
        return None
    return start(name)


def start(path: str, period: float = PERIOD_SECONDS) -> threading.Thread:
    """Checkpoint the database at `path` every `period` seconds, in a daemon thread."""
    _started.set()
    thread = threading.Thread(
        target=_checkpoint_forever, args=(path, period), name="sqlite-checkpoints", daemon=True
    )
    thread.start()
    return thread


def _checkpoint_forever(path: str, period: float) -> None:
    connection: sqlite3.Connection | None = None
    failing = False  # a failure is logged once, not every second until it ends
    while True:
        time.sleep(period)
        try:
            if connection is None:
                # Read and write, never create: sqlite3.connect() makes a missing file, empty.
                connection = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=rw", uri=True)
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:
            if not failing:
                logger.exception("Checkpointing %s failed; trying again every %s s", path, period)
            failing = True
            if connection is not None:
                connection.close()
                connection = None
        else:
            if failing:
                logger.warning("Checkpointing %s works again", path)
            failing = False
