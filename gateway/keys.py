"""Creating, finding and revoking team API keys.

A request is authenticated by the SHA-256 of its key. The key found (with its team) is kept in the
process's configuration snapshot (providers/configuration.py), so a request reads no key row while
the configuration version it reads anyway is unchanged: every save or delete of a key or a team
sets a new version, so a key revoked by any server process is refused by every other at its next
request, not after a cache period. A secret that matches no active key is never kept.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction

from accounts.models import Team
from audit import log
from gateway.models import ApiKey
from llmhub import conf, instances, statements
from providers import configuration

PREFIX = "llmh-"
# Past this many client addresses with recent failures, the stale ones are dropped: addresses made
# up by the thousand cannot fill memory.
FAILURE_TABLE_SIZE = 10_000
LAST_USED_EVERY = timedelta(seconds=60)  # last_used_at is written at most this often per key

# Wrong keys per client address: past LLMHUB_API_KEY_FAILURES_PER_MINUTE in a minute, the address
# is answered 429 until the oldest failure is a minute old (guessing keys is pointless anyway at
# 256 bits; this keeps a guesser from costing the database a query per guess).
FAILURE_WINDOW_SECONDS = 60.0
_failures: dict[str, deque[float]] = {}


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    secret: str  # shown once, never stored


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def create(
    team: Team,
    name: str,
    created_by=None,
    allowed_models: list[str] | None = None,
    allow_unpriced: bool = False,
    actor=None,
    requests_per_minute: int | None = None,
    tokens_per_minute: int | None = None,
) -> NewKey:
    secret = PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        team=team,
        name=name,
        digest=digest(secret),
        last_four=secret[-4:],
        created_by=created_by,
        allowed_models=allowed_models or [],
        allow_unpriced=allow_unpriced,
        requests_per_minute=requests_per_minute,
        tokens_per_minute=tokens_per_minute,
    )
    log.record(actor or created_by, "api_key_created", key, team=team, after=_state(key))
    return NewKey(key, secret)


@transaction.atomic
def revoke(key: ApiKey, actor) -> None:
    if key.revoked_at is not None:
        return
    before = _state(key)
    key.revoked_at = conf.now()
    key.save(update_fields=["revoked_at"])
    log.record(actor, "api_key_revoked", key, team=key.team, before=before, after=_state(key))


def _state(key: ApiKey) -> dict:
    return {
        "name": key.name,
        "masked_key": key.masked,
        "allowed_models": key.allowed_models,
        "allow_unpriced": key.allow_unpriced,
        "rpm": key.requests_per_minute,
        "tpm": key.tokens_per_minute,
        "revoked": key.revoked_at is not None,
    }


def presented(headers: Mapping[str, str]) -> str:
    """The key a request presents, in the header each SDK sends it in: `Authorization: Bearer`
    (OpenAI's SDKs), `x-api-key` (Anthropic's, so ANTHROPIC_BASE_URL works) or `api-key` (Azure
    OpenAI's). The first header present counts: a wrong Bearer is not saved by a right x-api-key."""
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, secret = authorization.partition(" ")
        return secret.strip() if scheme.lower() == "bearer" else ""
    return (headers.get("x-api-key") or headers.get("api-key") or "").strip()


def authenticate(secret: str) -> ApiKey | None:
    """The active key of this secret (see `presented`), or None. The caller gets its own copy of
    the kept key and team, free to change them."""
    if not secret.startswith(PREFIX):
        return None
    hashed = digest(secret)
    found = configuration.cached(("api_key", hashed), functools.partial(_read, hashed), keep=_found)
    if found is None:
        return None
    key = instances.copy(found)
    key._state.fields_cache = {"team": instances.copy(found.team)}
    _touch(key, found)
    return key


def _read(hashed: str) -> ApiKey | None:
    db = statements.db()
    row = statements.run(_lookup(db.vendor), [hashed], statements.fetchone, db)
    if row is None:
        return None
    key = instances.load(ApiKey, row, wrapper=db)
    key.team = instances.load(Team, row, start=len(ApiKey._meta.concrete_fields), wrapper=db)
    return key


def _found(key: ApiKey | None) -> bool:
    return key is not None


@functools.cache
def _lookup(vendor: str) -> str:
    """The active key of a digest with its team, in plain SQL (llmhub/statements.py: the ORM took
    ten times longer to compose it than to run it). `digest` is unique."""
    key, team = statements.table(ApiKey), statements.table(Team)
    return (
        f"SELECT {statements.columns(ApiKey, 'k')}, {statements.columns(Team, 't')} FROM {key} k "
        f"JOIN {team} t ON t.{statements.column(Team, 'id')} = k.{statements.column(ApiKey, 'team')} "
        f"WHERE k.{statements.column(ApiKey, 'digest')} = %s AND k.{statements.column(ApiKey, 'revoked_at')} IS NULL"
    )


def failure_wait(address: str) -> float | None:
    """Seconds until this address may try a key again, after too many wrong ones; None if it may."""
    failures = _failures.get(address)
    if not failures or len(failures) < settings.LLMHUB_API_KEY_FAILURES_PER_MINUTE:
        return None
    wait = failures[0] + FAILURE_WINDOW_SECONDS - time.monotonic()
    return wait if wait > 0 else None


def note_failure(address: str) -> None:
    """Count a wrong or revoked key from this address (in this process; kept for a minute)."""
    now = time.monotonic()
    if len(_failures) >= FAILURE_TABLE_SIZE:  # addresses made up by the thousand cannot fill memory
        for stale in [a for a, times in _failures.items() if now - times[-1] >= FAILURE_WINDOW_SECONDS]:
            del _failures[stale]
    failures = _failures.setdefault(address, deque())
    while failures and now - failures[0] >= FAILURE_WINDOW_SECONDS:
        failures.popleft()
    failures.append(now)


def _touch(key: ApiKey, kept: ApiKey) -> None:
    """Write last_used_at when it is older than LAST_USED_EVERY (the kept key remembers the write:
    each process writes it at most that often)."""
    now = conf.now()
    if kept.last_used_at is None or now - kept.last_used_at >= LAST_USED_EVERY:
        key.last_used_at = kept.last_used_at = now
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
