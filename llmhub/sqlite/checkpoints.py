"""A server's SQLite write-ahead log, copied back into the database file every second by a periodic
job, not by the requests.

SQLite does that copy (a checkpoint, which ends with an fsync of the database file) in the commit
that finds the log over 1,000 pages: on a server, one API request in about a hundred paid a few
milliseconds for it in its settlement. bench/gateway.py measured the added p99 at concurrency 1
at 7.7 to 8.3 ms with it, 3.4 to 4.6 ms without, the p50 unchanged (issue 16).

A server process with its periodic jobs on (llmhub/server.py, LLMHUB_BACKGROUND_TASKS) enables
this before it serves: every connection it opens from then on commits without checkpointing
(`wal_autocheckpoint=0`, set as it opens: llmhub/sqlite/base.py), and the job `sqlite-checkpoints`
(ops/apps.py, run by ops/maintenance.py) runs a PASSIVE checkpoint every second on one of the
threads requests already use for the database (llmhub/hops.py): a thread of its own cost ~4 MB
more (bench/memory.py), by how glibc hands out its malloc arenas. A PASSIVE checkpoint waits for no
reader and no writer, copies what no reader still needs, and costs nothing when the log is empty;
sqlite3 lets go of the GIL while it works, so the event loop serves on meanwhile. A checkpoint that
fails is logged (once, and again when one works) and tried again a second later; the log grows
meanwhile, as it would have with the commits' checkpoints failing. Other processes (manage.py, the
command line) checkpoint as SQLite does by default, and the last connection to close checkpoints
whatever is left.
"""

from __future__ import annotations

import logging
import threading

from django.db import DatabaseError, connection

from llmhub import hops

logger = logging.getLogger(__name__)

PERIOD_SECONDS = 1.0
_enabled = threading.Event()
_failing = False  # a failure is logged once, not every second until it ends


def needed(database: dict) -> bool:
    """Whether Django's database settings name an SQLite file (not PostgreSQL, not in memory)."""
    name = str(database["NAME"])
    return database["ENGINE"] == "llmhub.sqlite" and name != ":memory:" and "mode=memory" not in name


def enable() -> None:
    """From now on this process's new connections leave checkpoints to the job."""
    _enabled.set()


def enabled() -> bool:
    return _enabled.is_set()


async def checkpoint() -> None:
    """The periodic job: one PASSIVE checkpoint, on a hop's thread."""
    await hops.hop(checkpoint_now)


def checkpoint_now() -> None:
    global _failing
    try:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            cursor.fetchall()
    except DatabaseError:
        if not _failing:
            logger.exception("Checkpointing the database failed; trying again every %s s", PERIOD_SECONDS)
        _failing = True
    else:
        if _failing:
            logger.warning("Checkpointing the database works again")
        _failing = False
