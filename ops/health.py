"""Readiness: can this process serve? The database answers and has every migration of this code,
the configured encryption keys read the stored credentials, and the channel layer carries a message.

Each check says what is wrong in words an operator acts on; none repeats an exception's text, which
could name a host, a user or a URL with its password.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from dataclasses import asdict, dataclass

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor

from providers import crypto

log = logging.getLogger("llmhub.health")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


def database() -> list[Check]:
    """The database answers; every migration is applied; the keys read every provider's credentials.
    Later checks are skipped (not failed) when an earlier one fails: they could only repeat it."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as error:
        log.warning("readiness: the database is unreachable (%s)", type(error).__name__)
        return [
            Check("database", False, "The database does not answer."),
            *_skipped("migrations", "credentials"),
        ]
    checks = [Check("database", True), _migrations()]
    if not checks[-1].ok:
        return [*checks, *_skipped("credentials")]
    return [*checks, _credentials()]


def _migrations() -> Check:
    executor = MigrationExecutor(connection)
    missing = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if missing:
        names = ", ".join(f"{m.app_label}.{m.name}" for m, _ in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        return Check("migrations", False, f"{len(missing)} unapplied: {names}{more}. Run manage.py migrate.")
    return Check("migrations", True)


def _credentials() -> Check:
    from providers.models import Provider

    stored = Provider.objects.exclude(credentials_encrypted="").values_list("pk", "credentials_encrypted")
    unreadable = []
    for provider_id, token in stored:
        try:
            crypto.decrypt(token)
        except crypto.CredentialsUnreadable:
            unreadable.append(provider_id)
    if unreadable:
        return Check(
            "credentials",
            False,
            f"The encryption keys cannot read the credentials of {len(unreadable)} provider(s) "
            f"({', '.join(sorted(unreadable)[:5])}). Is LLMHUB_ENCRYPTION_KEYS (or data/encryption.key) "
            "the one these were saved with?",
        )
    return Check("credentials", True)


def _skipped(*names: str) -> list[Check]:
    return [Check(name, False, "Not checked: see the check above.") for name in names]


async def channel_layer() -> Check:
    """A message sent to a fresh channel comes back within LLMHUB_READY_TIMEOUT seconds."""
    layer = get_channel_layer()
    if layer is None:
        return Check("channel_layer", False, "No channel layer is configured.")
    name = f"llmhub.ready.{uuid.uuid4().hex}"
    unreachable: tuple[type[Exception], ...] = (TimeoutError, OSError)
    if "redis" in sys.modules:  # a Redis layer has loaded it; without REDIS_URL it is never loaded
        unreachable += (sys.modules["redis"].RedisError,)
    try:
        async with asyncio.timeout(settings.LLMHUB_READY_TIMEOUT):
            await layer.send(name, {"type": "ready.check"})
            await layer.receive(name)
    except unreachable as error:
        log.warning("readiness: the channel layer is unreachable (%s)", type(error).__name__)
        return Check("channel_layer", False, "The channel layer (REDIS_URL) does not answer.")
    return Check("channel_layer", True)


async def readiness() -> dict:
    """{"ready": bool, "checks": {name: {"ok": bool, "detail": str}}} for /readyz."""
    checks = [*await sync_to_async(database)(), await channel_layer()]
    return {
        "ready": all(check.ok for check in checks),
        "checks": {check.name: {k: v for k, v in asdict(check).items() if k != "name"} for check in checks},
    }
