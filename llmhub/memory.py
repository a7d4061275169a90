"""What a server process does so that glibc's malloc holds less memory it no longer uses: two malloc
arenas, not one per thread (glibc makes up to 8 per core as threads first allocate, each keeping its
own free memory). The server's threads are the event loop's (main arena) and the pooled ones that
run the database and the tokenizer, which share the second. ~3 MB less RSS after 200 requests
(bench/memory.py, issue 16), no more CPU (bench/api_cpu.py).

glibc only: elsewhere (musl, macOS) it does nothing.
"""

import ctypes
import functools
import logging

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's malloc.h
ARENAS = 2


@functools.cache
def _libc() -> ctypes.CDLL | None:
    libc = ctypes.CDLL(None)  # the symbols the process has loaded, the C library's among them
    if not hasattr(libc, "mallopt"):
        return None
    return libc


def limit_arenas() -> None:
    """At most ARENAS malloc arenas in this process. Before the threads start: an arena a thread
    already has stays."""
    libc = _libc()
    if libc is not None and libc.mallopt(M_ARENA_MAX, ARENAS) != 1:
        log.warning("malloc refused to limit its arenas to %d", ARENAS)
