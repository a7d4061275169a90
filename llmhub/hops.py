"""A trip ("hop") from the event loop to a pool of threads, where the database is used: what
channels' database_sync_to_async(thread_sensitive=False) does on the request's hot path, without
asgiref's machinery around each call, nor concurrent.futures' (issue 16). Counted by callgrind, a hop
of a no-op through loop.run_in_executor is ~145,000 instructions (a concurrent Future with its
Condition, the executor's semaphore, the two futures chained through callbacks); this pool's is
~45,000: the work is put on a queue, and the thread hands the result back to the loop itself.

Kept, as database_sync_to_async does it:
- threads that last (one pool per event loop, up to as many threads as the loop's default executor
  has: min(32, CPUs + 4)), so their database connections last;
- the caller's context, copied: the function sees the caller's ContextVars (the configuration pin,
  the request id in log lines). What it sets stays in its copy: asgiref would copy it back to the
  caller, which none of the functions sent here needs (they set no ContextVar);
- close_old_connections before and after: a connection past CONN_MAX_AGE, or broken, is closed;
  before, among the connections the thread's last hop ended with;
- Django's SynchronousOnlyOperation: these threads run no event loop, so the ORM works there, and
  it still refuses to run on the loop's own thread;
- a cancelled caller stops waiting at once, while the function runs on to its end (`start` gives
  the future, for a caller that must see that end);
- at exit, a function under way runs to its end (the threads are not daemons).

Not kept: asgiref's thread-sensitive mode and the way back to this loop from inside (async_to_sync
in a function sent here would run its coroutine on a loop of its own): not for such functions.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import queue
import threading
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from django.db import connections

T = TypeVar("T")
# As many threads as asyncio's default executor (concurrent.futures.ThreadPoolExecutor) starts at most.
MAX_THREADS = min(32, (os.cpu_count() or 1) + 4)
# An idle thread looks this often whether the interpreter is exiting or its loop closed, to end.
IDLE_CHECK_SECONDS = 1.0
# A pool thread's database connections as its last hop left them (only hops run on these threads).
_opened = threading.local()


class _Hop(threading.local):
    """What this thread's current hop looked up: django.db's `connections[...]` costs ~10,000
    instructions a look-up in these threads (asgiref's Local raises and catches an AttributeError,
    and asyncio.get_running_loop() a RuntimeError), and a request's hops looked the default
    connection up ~11 times (llmhub/statements.py's db())."""

    within = False  # this thread runs a hop's function
    wrapper: Any = None  # the default database's connection, once looked up in this hop


current = _Hop()
_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pool] = weakref.WeakKeyDictionary()


def start(function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """`function(*args)` sent to the pooled threads; its future."""
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop) or _pool_for(loop)
    future = loop.create_future()
    pool.submit((loop, future, contextvars.copy_context(), function, args))
    return future


async def hop(function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` on the pooled threads, awaited."""
    return await start(function, *args)


def _pool_for(loop: asyncio.AbstractEventLoop) -> _Pool:
    pool = _pools[loop] = _Pool(loop)
    weakref.finalize(loop, pool.stop)  # the loop gone, its threads end (and their connections with them)
    return pool


class _Pool:
    """Threads that take work from a queue; one is started when work comes and none is idle."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = weakref.ref(loop)  # not kept alive by its threads
        self.work: queue.SimpleQueue = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.threads = 0
        self.idle = 0  # threads waiting for work that no submitted work has claimed yet

    def submit(self, item: tuple) -> None:
        number = 0  # of the thread to start, if one is
        with self.lock:
            if self.idle:
                self.idle -= 1
            elif self.threads < MAX_THREADS:
                self.threads += 1
                number = self.threads
        if number:
            self._start_thread(number)
        self.work.put(item)

    def _start_thread(self, number: int) -> None:
        try:
            threading.Thread(target=self.serve, name=f"llmhub-hop-{number}").start()
        except RuntimeError:  # no thread could be started: the caller sees the error
            with self.lock:
                self.threads -= 1
            raise

    def serve(self) -> None:
        main = threading.main_thread()
        while True:
            try:
                item = self.work.get(timeout=IDLE_CHECK_SECONDS)
            except queue.Empty:
                loop = self.loop()
                if main.is_alive() and loop is not None and not loop.is_closed():
                    continue
                return  # the interpreter is exiting, or the loop closed: no more work can come
            if item is None:
                return
            deliver = _run(*item)
            # Idle before the caller hears of the result: its next hop, which may follow at once,
            # finds this thread free instead of starting another.
            with self.lock:
                self.idle += 1
            deliver()
            del item, deliver  # the result and its future are not kept while idle

    def stop(self) -> None:
        for _ in range(self.threads):
            self.work.put(None)


def _run(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future, context, function, args
) -> Callable[[], None]:
    """Runs the work; what hands its result (or error) to the caller."""
    try:
        result = context.run(_pooled, function, args)
    except BaseException as error:  # noqa: BLE001 - handed to the caller, as run_in_executor does
        return partial(_deliver, loop, future.set_exception, future, error)
    return partial(_deliver, loop, future.set_result, future, result)


def _deliver(loop: asyncio.AbstractEventLoop, setter: Callable, future: asyncio.Future, value: Any) -> None:
    try:
        loop.call_soon_threadsafe(_settle, setter, future, value)
    except RuntimeError:  # the loop closed meanwhile: nobody waits for the value (as run_in_executor)
        return


def _settle(setter: Callable, future: asyncio.Future, value: Any) -> None:
    if not future.done():  # not if the caller cancelled it: it stopped waiting
        setter(value)


def _pooled(function: Callable[..., T], args: tuple) -> T:
    """close_old_connections() before and after `function`. Before, the connections are those the
    thread's last hop ended with (django.db's own look-up costs ~20,000 instructions: a thread-local
    read through asgiref's Local, twice per database alias)."""
    for kept in getattr(_opened, "connections", ()):
        kept.close_if_unusable_or_obsolete()
    current.within = True
    try:
        return function(*args)
    finally:
        wrapper = current.wrapper
        current.within, current.wrapper = False, None
        _opened.connections = _initialized(wrapper)
        for kept in _opened.connections:
            kept.close_if_unusable_or_obsolete()


def _initialized(wrapper: Any) -> list:
    """connections.all(initialized_only=True) at the end of a hop: with one database, the connection
    the hop looked up (statements.db()) when it did, without django.db's look-ups (two a database,
    each making and catching a RuntimeError in asgiref's Local)."""
    if wrapper is not None and len(connections.settings) == 1:
        return [wrapper]
    return connections.all(initialized_only=True)
