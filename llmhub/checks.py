"""Start-up checks: the data folder's file modes, and encryption keys that read the stored
credentials. They run as system checks (`manage.py check`, `migrate`, so `make run` before it
serves) and, for a server started any other way, before its first request (StartupGuard)."""

from __future__ import annotations

import logging
import stat
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import checks

from providers import keyfile

log = logging.getLogger("llmhub")
PRIVATE_FILES = ("llmhub.sqlite3", "llmhub.sqlite3-wal", "llmhub.sqlite3-shm", "secret_key", "encryption.key")


def wide_modes() -> list[str]:
    """What in the data folder others than its owner can read: the folder (0700 expected) and the
    database, its WAL and SHM files and the keys (0600 expected)."""
    folder: Path = settings.DATA_DIR
    found = []
    paths = [(folder, 0o700)] + [(folder / name, 0o600) for name in PRIVATE_FILES]
    for path, expected in paths:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            found.append(f"{path} has mode {mode:04o}: others can read it. Run: chmod {expected:o} {path}")
    return found


def warn_about_file_modes() -> None:
    for message in wide_modes():
        log.warning(message)


@checks.register()
def file_modes(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return [checks.Warning(message, id="llmhub.W001") for message in wide_modes()]


@checks.register()
def encryption_keys(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    problem = keyfile.startup_problem()
    return [checks.Error(problem, id="llmhub.E001")] if problem else []


class StartupGuard:
    """ASGI: refuse to serve while stored credentials exist that no configured key reads (a lost or
    wrong key file): each request is answered 503 with the reason, until a check passes."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.checked = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if self.checked or scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        problem = await sync_to_async(keyfile.startup_problem)()
        if not problem:
            self.checked = True  # once the keys read the credentials, they go on doing so
            return await self.app(scope, receive, send)
        log.critical(problem)
        if scope["type"] == "websocket":
            await receive()
            return await send({"type": "websocket.close", "code": 1011})
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": f"LLMHub cannot start: {problem}\n".encode()})
