"""Django's SQLite backend, except that a connection that failed is reopened at the next request or
task boundary instead of being kept.

SQLite silently opens a file it may not write read-only, and such a connection stays read-only after
the permissions return. Django keeps SQLite connections open (CONN_MAX_AGE=None) and its usual health
check cannot tell: `is_usable()` is always true for SQLite, and a failed transaction's successful
rollback clears the error flag. Without this, only a restart recovered from a read-only spell.

Its cursors also keep each statement's conversion to SQLite's "?" placeholders: Django converts the
SQL text with a regular expression at every execution (5 to 25 µs for a long INSERT or UPDATE), and a
request runs the same few statements every time (issue 16).

And a transaction's BEGIN and COMMIT go to the connection itself, without Django's cursor wrapper
and query-logging context around them (~9 µs of CPU a transaction, two a request), unless queries
are watched: logged (DEBUG, CaptureQueriesContext) or execute wrappers installed, which see them as
before. Errors are Django's either way, and noted as above.

In a server process its connections leave checkpoints of the write-ahead log to a thread of their
own (llmhub/sqlite/checkpoints.py), not to the commit that happens to find the log full.
Its refusal to run on an event loop's thread is checked without an exception (llmhub/loop_checks.py).
"""

import functools

from django.db.backends.sqlite3 import base
from django.db.utils import DatabaseErrorWrapper
from django.utils.functional import cached_property

from llmhub import conf
from llmhub.loop_checks import LoopChecks
from llmhub.sqlite import checkpoints


class _NoteFaults(DatabaseErrorWrapper):
    def __exit__(self, exc_type, exc_value, traceback) -> None:
        if exc_type is not None and issubclass(exc_type, base.Database.OperationalError):
            self.wrapper.faulted = True  # read-only, locked, disk I/O error, cannot open
        super().__exit__(exc_type, exc_value, traceback)


@functools.lru_cache(maxsize=1024)
def qmark(query: str) -> str:
    """The statement in SQLite's "?" style, as Django's SQLite cursor converts it (kept per text)."""
    return base.FORMAT_QMARK_REGEX.sub("?", query).replace("%%", "%")


class _Cursor(base.SQLiteCursorWrapper):
    def convert_query(self, query: str, *, param_names=None) -> str:
        if param_names is None:  # "format" style, as Django writes it: the same text, the same result
            return qmark(query)
        return super().convert_query(query, param_names=param_names)


class DatabaseWrapper(LoopChecks, base.DatabaseWrapper):
    faulted = False

    def create_cursor(self, name=None) -> _Cursor:
        return self.connection.cursor(factory=_Cursor)

    @cached_property
    def wrap_database_errors(self) -> DatabaseErrorWrapper:
        return _NoteFaults(self)

    @property
    def queries_logged(self) -> bool:
        # Django's, with DEBUG read through llmhub.conf: a read of settings.DEBUG costs ~3,000
        # instructions, and a request's two transactions ask 4 times.
        return self.force_debug_cursor or conf.setting("DEBUG")

    def _start_transaction_under_autocommit(self) -> None:
        if self.queries_logged or self.execute_wrappers:
            super()._start_transaction_under_autocommit()
            return
        self.validate_thread_sharing()  # as Django's cursor() would
        mode = self.transaction_mode
        with self.wrap_database_errors:
            self.connection.execute(f"BEGIN {mode}" if mode else "BEGIN")

    def _commit(self) -> None:
        if self.connection is None or self.queries_logged:
            super()._commit()
            return
        with self.wrap_database_errors:
            self.connection.commit()

    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        if checkpoints.running():
            connection.execute("PRAGMA wal_autocheckpoint=0")
        return connection

    def connect(self) -> None:
        self.faulted = False
        super().connect()

    def close_if_unusable_or_obsolete(self) -> None:
        if self.connection is not None and self.faulted and not self.in_atomic_block:
            self.close()
            return
        super().close_if_unusable_or_obsolete()
