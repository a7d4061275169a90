"""The event loop a server process runs on, chosen when this module is imported: first thing in
llmhub/server.py, because daphne makes its loop (asyncio.new_event_loop(), which asks the event
loop policy) and installs Twisted's reactor on it when daphne.server is imported.

uvloop's loop (libuv) by default: the same daphne, Twisted and app spend less CPU a request on it
(bench/gateway.py, issue 16). LLMHUB_EVENT_LOOP=asyncio keeps asyncio's own loop, to rule the
loop out when looking for a fault."""

import asyncio
import os

from django.core.exceptions import ImproperlyConfigured

CHOICES = ("uvloop", "asyncio")
CHOSEN = os.environ.get("LLMHUB_EVENT_LOOP", "uvloop").strip().lower() or "uvloop"

if CHOSEN not in CHOICES:
    raise ImproperlyConfigured(f"LLMHUB_EVENT_LOOP must be uvloop or asyncio; got {CHOSEN!r}")
if CHOSEN == "uvloop":
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def name(loop: asyncio.AbstractEventLoop) -> str:
    """uvloop or asyncio: the library whose loop this is, for the start-up log line."""
    return type(loop).__module__.split(".")[0]
