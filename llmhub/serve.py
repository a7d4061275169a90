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

import argparse
import logging
import os
import subprocess
import sys

logger = logging.getLogger("llmhub.serve")


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
    without_pyopenssl()
    without_autobahn_nvx()
    from llmhub import server

    server.serve(options.host, options.port, options.fd)


def without_pyopenssl() -> None:
    """A server serves plain HTTP on a TCP port or the socket it inherits (TLS ends at a proxy in
    front of it, README), and its provider calls use Python's own ssl module (httpx). Twisted and
    autobahn load pyOpenSSL only to offer TLS ports and to read a TLS connection's details, and
    each does without it when it cannot be imported: it is not imported, 5 MB less RSS
    (bench/memory.py, issue 16). Before daphne imports Twisted; not if something already has."""
    sys.modules.setdefault("OpenSSL", None)  # None in sys.modules: its import raises ImportError


def without_autobahn_nvx() -> None:
    """Autobahn (daphne's websockets) checks the UTF-8 of the text frames a client sends, and
    unmasks them, with its CFFI extension (NVX) when it can: loading it builds cffi's C parser
    (cffi and pycparser), 1 MB of RSS (bench/memory.py, issue 16). A client sends a run page's
    socket only a few short control messages (start, cancel, an answer), which autobahn's pure
    Python does as well; what the server sends is neither masked nor checked. AUTOBAHN_USE_NVX is
    autobahn's own switch; one set in the environment is kept. Before daphne imports autobahn."""
    os.environ.setdefault("AUTOBAHN_USE_NVX", "0")


def save_file_providers() -> None:
    """The providers file's providers whose key is in the environment are saved at start-up, once
    for all the workers, by `manage.py providers_reload` in a process of its own (the supervisor
    does not load the app): a request only reads configuration."""
    from django.conf import settings

    done = subprocess.run(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "providers_reload"], check=False
    )
    if done.returncode != 0:
        logger.error("No provider from the providers file was set up (see the error above)")


def supervise(options: argparse.Namespace) -> int:
    import logging.config

    from django.conf import settings

    from llmhub import workers

    # The settings (a bad value stops here) and the logging, before any worker starts. Not the app,
    # nor Django's own logging (mail to admins): the supervisor serves nothing, and each worker is a
    # fresh process that sets both up (34 MB of the supervisor's 80 MB, bench/memory.py).
    logging.config.dictConfig(settings.LOGGING)
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
