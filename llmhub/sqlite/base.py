"""Django's SQLite backend, except that a connection that failed is reopened at the next request or
task boundary instead of being kept.

SQLite silently opens a file it may not write read-only, and such a connection stays read-only after
the permissions return. Django keeps SQLite connections open (CONN_MAX_AGE=None) and its usual health
check cannot tell: `is_usable()` is always true for SQLite, and a failed transaction's successful
rollback clears the error flag. Without this, only a restart recovered from a read-only spell.
"""

from django.db.backends.sqlite3 import base
from django.db.utils import DatabaseErrorWrapper
from django.utils.functional import cached_property


class _NoteFaults(DatabaseErrorWrapper):
    def __exit__(self, exc_type, exc_value, traceback) -> None:
        if exc_type is not None and issubclass(exc_type, base.Database.OperationalError):
            self.wrapper.faulted = True  # read-only, locked, disk I/O error, cannot open
        super().__exit__(exc_type, exc_value, traceback)


class DatabaseWrapper(base.DatabaseWrapper):
    faulted = False

    @cached_property
    def wrap_database_errors(self) -> DatabaseErrorWrapper:
        return _NoteFaults(self)

    def connect(self) -> None:
        self.faulted = False
        super().connect()

    def close_if_unusable_or_obsolete(self) -> None:
        if self.connection is not None and self.faulted and not self.in_atomic_block:
            self.close()
            return
        super().close_if_unusable_or_obsolete()
