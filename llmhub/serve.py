"""Serve LLMHub: daphne (HTTP and websockets), plus what a bare daphne does not do.

- Runs always end: runs whose server died (their lease ran out) are ended at start-up and every
  LLMHUB_RECOVERY_SECONDS (usage/recovery.py).
- SIGTERM (or Ctrl-C) drains: the listening socket closes at once, so a new server can take the
  port; running runs get LLMHUB_SHUTDOWN_GRACE_SECONDS to finish, then each is interrupted where it
  waits, settled and told so; then the process exits. A second signal stops at once.

Daphne's own handlers stop the reactor at the first signal, dropping every run mid-stream with its
money unsettled, so the server runs with its handlers off and these in their place.

    python -m llmhub.serve [--host 127.0.0.1] [--port 8000] [--workers N]

With --workers N (N > 1) this process supervises N such servers on one port (llmhub/workers.py);
they need PostgreSQL (DATABASE_URL) and Redis (REDIS_URL).
"""

from daphne import server as daphne_server  # isort: skip - installs Twisted's asyncio reactor first

import argparse
import asyncio
import logging
import os
import signal
import sys

logger = logging.getLogger("llmhub.serve")
# After the runs have settled, time for their last frames and events to reach the clients.
FLUSH_SECONDS = 0.5
# A worker (--fd) checks this often that its supervisor is alive; orphaned, it drains and stops
# rather than hold the port with nobody to stop it.
SUPERVISOR_CHECK_SECONDS = 1.0


class DrainingServer(daphne_server.Server):
    def __init__(self, *args, grace: float, supervised: bool = False, **kwargs) -> None:
        super().__init__(*args, signal_handlers=False, **kwargs)
        self.grace = grace
        self.supervisor = os.getppid() if supervised else None
        self.ports: list = []
        self.draining: asyncio.Task | None = None
        self.recovering: asyncio.Task | None = None
        self.watching: asyncio.Task | None = None

    def listen_success(self, port) -> None:
        self.ports.append(port)
        super().listen_success(port)

    def started(self) -> None:
        from usage import recovery

        loop = asyncio.get_event_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.on_signal, signum)
        self.recovering = loop.create_task(recovery.keep_recovering())
        if self.supervisor is not None:
            self.watching = loop.create_task(self.watch_supervisor())

    async def watch_supervisor(self) -> None:
        while os.getppid() == self.supervisor:
            await asyncio.sleep(SUPERVISOR_CHECK_SECONDS)
        logger.warning("The supervisor (pid %d) is gone: draining", self.supervisor)
        self.on_signal(signal.SIGTERM)

    def on_signal(self, signum: int) -> None:
        if self.draining is not None:
            logger.warning("Second %s: stopping now", signal.Signals(signum).name)
            self.stop()
            return
        self.draining = asyncio.get_event_loop().create_task(self.drain(signum))

    async def drain(self, signum: int) -> None:
        from usage import live

        name = signal.Signals(signum).name
        logger.info("%s: no new connections; %d run(s) have %g s to finish", name, live.count(), self.grace)
        for port in self.ports:
            port.stopListening()
        interrupted = await live.drain(self.grace)
        if interrupted:
            logger.info("Interrupted %d run(s) at the end of the grace period; they are settled", interrupted)
        if self.recovering is not None:
            self.recovering.cancel()
        await asyncio.sleep(FLUSH_SECONDS)
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve LLMHub (daphne, with a drain on SIGTERM).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="server processes sharing the port")
    parser.add_argument("--fd", type=int, help=argparse.SUPPRESS)  # a worker: the socket it inherits
    options = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmhub.settings")
    if options.workers > 1:
        sys.exit(supervise(options))
    from daphne.endpoints import build_endpoint_description_strings
    from django.conf import settings
    from twisted.internet import reactor

    from llmhub.asgi import application

    if options.fd is not None:
        endpoints = build_endpoint_description_strings(file_descriptor=options.fd)
    else:  # (a worker's supervisor did it once for all of them)
        save_file_providers()
        endpoints = build_endpoint_description_strings(host=options.host, port=options.port)
    server = DrainingServer(
        application,
        endpoints=endpoints,
        action_logger=None,  # LLMHub logs one line per request itself (ops/middleware.py)
        grace=settings.LLMHUB_SHUTDOWN_GRACE_SECONDS,
        supervised=options.fd is not None,
    )
    reactor.callWhenRunning(server.started)
    if options.fd is None:
        logger.info(
            "LLMHub on http://%s:%d (SIGTERM drains for %g s)", options.host, options.port, server.grace
        )
    server.run()


def save_file_providers() -> None:
    """The providers file's providers whose key is in the environment are saved at start-up, once:
    a request only reads configuration (providers.registry.ProviderRegistry.reload)."""
    from django.db import connections

    from providers.registry import registry

    if error := registry.reload():
        logger.error("%s (no provider from the providers file was set up)", error)
    connections.close_all()  # this thread serves no request


def supervise(options: argparse.Namespace) -> int:
    import django
    from django.conf import settings

    from llmhub import workers

    django.setup()  # the settings' checks and logging, before any worker starts
    if refused := workers.refusal(settings):
        logger.error("%s", refused)
        return 2
    save_file_providers()
    supervisor = workers.Supervisor(options.host, options.port, options.workers)
    logger.info(
        "LLMHub on http://%s:%d, %d worker processes (SIGTERM drains for %g s)",
        options.host,
        options.port,
        options.workers,
        settings.LLMHUB_SHUTDOWN_GRACE_SECONDS,
    )
    return supervisor.run()


if __name__ == "__main__":
    main()
