"""What a server process's first requests would pay once, paid before it serves them.

A fresh server used to do these at its first request, on the event loop, where every request of a
first burst waited for them (100 concurrent requests at a fresh process: each took 1.6 to 2.7 s,
against ~10 ms warm; measured by bench/first_burst.py, issue 16):

- the URLconf: Django imports it at its first request, and with it every view module: ~160 ms of
  CPU, 134 modules (not Redis' client, loaded only with REDIS_URL);
- the API's fixed routes (llmhub/api_handler.py), taken from it;
- the TLS context every provider connection uses (providers/network.py): the CA bundle parsed;
- anyio's asyncio back end, which httpcore's locks and cancel scopes load at their first use:
  ~30 ms, 29 modules.

Together ~0.35 s of CPU and ~11 MB, which a server holds anyway once it has served a request (or
answered /healthz). Not the tokenizer (usage/tokens.py): ~0.3 s of CPU, but 47 MB for o200k_base,
which would take an idle process past 120 MB; it is loaded at the first count, once (tiktoken's
lock), on a pooled thread.
"""

import asyncio

import anyio
from django.urls import get_resolver

from llmhub.api_handler import fixed_routes
from providers import network


def before_serving() -> None:
    fixed_routes(get_resolver())  # imports the URLconf, and with it every view
    network.tls_context()
    # On a loop of its own (the imports are the process's): not asyncio.run, which would leave the
    # thread without a current loop, and not the server's, whose reactor is not running yet.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_anyio_on_asyncio())
    finally:
        loop.close()


async def _anyio_on_asyncio() -> None:
    """What httpcore uses of anyio on a provider call (its locks, events, cancel scopes, timeouts):
    anyio imports its asyncio back end at the first of them."""
    async with anyio.Lock(), anyio.Semaphore(1):
        with anyio.CancelScope(shield=True), anyio.fail_after(1):
            anyio.Event().set()
