"""A trip ("hop") from the event loop to the server's pooled threads, where the database is used: what
channels' database_sync_to_async(thread_sensitive=False) does on the request's hot path, without
asgiref's machinery around each call (issue 16: measured on the 2-core VM, a database_sync_to_async
of a no-op costs ~270 µs of CPU, a bare loop.run_in_executor ~200 µs).

Kept, as database_sync_to_async does it:
- the same threads (the loop's default executor), whose database connections last;
- the caller's context, copied: the function sees the caller's ContextVars (the configuration pin,
  the request id in log lines). What it sets stays in its copy: asgiref would copy it back to the
  caller, which none of the functions sent here needs (they set no ContextVar);
- close_old_connections before and after: a connection past CONN_MAX_AGE, or broken, is closed;
- Django's SynchronousOnlyOperation: these threads run no event loop, so the ORM works there, and
  it still refuses to run on the loop's own thread;
- a cancelled caller stops waiting at once, while the function runs on to its end (`start` gives
  the future, for a caller that must see that end).

Not kept: asgiref's thread-sensitive mode and the way back to this loop from inside (async_to_sync
in a function sent here would run its coroutine on a loop of its own): not for such functions.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import close_old_connections

T = TypeVar("T")


def start(function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """`function(*args)` sent to the pooled threads; its future."""
    context = contextvars.copy_context()
    return asyncio.get_running_loop().run_in_executor(None, context.run, _pooled, function, args)


async def hop(function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` on the pooled threads, awaited."""
    return await start(function, *args)


def _pooled(function: Callable[..., T], args: tuple) -> T:
    close_old_connections()
    try:
        return function(*args)
    finally:
        close_old_connections()
