"""Django's refusal to use the database on an event loop's thread, on the two backend methods every
transaction calls (ensure_connection(), through get_autocommit() and set_autocommit(), and
commit()), checked without making an exception.

Django's async_unsafe asks asyncio.get_running_loop(), which raises a RuntimeError in a thread with
no loop running, where the database is used (llmhub/hops.py); async_unsafe catches it. A request's
two transactions and its hops' connection checks made and caught twelve. asyncio._get_running_loop()
answers the same question with None. With a loop running, Django's own method runs and refuses as
before (SynchronousOnlyOperation, unless DJANGO_ALLOW_ASYNC_UNSAFE is set).
"""

from asyncio import _get_running_loop

from django.db.backends.base.base import BaseDatabaseWrapper

# The method under Django's async_unsafe decorator (functools.wraps keeps it as __wrapped__).
_commit = BaseDatabaseWrapper.commit.__wrapped__


class LoopChecks:
    """Mixed into our backends' DatabaseWrapper, before Django's class."""

    def ensure_connection(self) -> None:
        # Django's does nothing else with a connection open and no loop running.
        if self.connection is None or _get_running_loop() is not None:
            super().ensure_connection()

    def commit(self) -> None:
        if _get_running_loop() is None:
            _commit(self)
        else:
            super().commit()
