"""Requests and tokens per minute for an API key and for its team, across every server process.

A request is admitted (counted) or refused before its run exists: `admit` checks every limit that
applies and counts the request against all of them, or against none. A request's tokens are its
estimated input plus its output cap (max_tokens, times `n`), the basis its budget reservation
uses; like OpenAI, the count is not corrected once the real usage is known.

Each key or team with a limit has a window that opens with its first request and lasts
LLMHUB_RATE_LIMIT_WINDOW_SECONDS (60); when it is over, the counts start again. The counts live in
Redis when REDIS_URL is set (one Lua script: atomic), else in the database (gateway.RateWindow,
one row per scope, rows locked in a fixed order: exact on SQLite and PostgreSQL alike).
"""

from __future__ import annotations

import functools
import math
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Team
from audit import log
from gateway.models import ApiKey, RateWindow
from llmhub import statements
from usage.models import Run

if TYPE_CHECKING:
    from redis.commands.core import Script

REQUESTS, TOKENS = "requests", "tokens"


@dataclass(frozen=True)
class Limit:
    scope: str  # "key:12" or "team:3": its counter's name
    name: str  # what a refusal calls it: "API key ci" or "team Alpha"
    requests: int | None  # per window; None: no limit
    tokens: int | None


@dataclass(frozen=True)
class Used:
    """A limit's window once a request is counted (or, when refused, as it stands)."""

    limit: Limit
    requests: int
    tokens: int
    reset: float  # seconds until the window is over

    def remaining(self, kind: str) -> int | None:
        allowed = getattr(self.limit, kind)
        return max(0, allowed - getattr(self, kind)) if allowed else None


@dataclass(frozen=True)
class Standing:
    """Every limit a request is subject to; the answer's headers name the tightest of each kind."""

    used: tuple[Used, ...]

    def tightest(self, kind: str) -> Used | None:
        limited = [used for used in self.used if getattr(used.limit, kind)]  # 0, as None: no limit
        return min(limited, key=lambda used: (used.remaining(kind), -used.reset), default=None)

    def headers(self, anthropic: bool = False) -> dict[str, str]:
        """OpenAI's x-ratelimit-* headers (reset as a duration, "1.5s", "6m0s"), or Anthropic's
        anthropic-ratelimit-* headers (reset as an RFC 3339 time)."""
        headers = {}
        for kind in (REQUESTS, TOKENS):
            used = self.tightest(kind)
            if used is None:
                continue
            values = (getattr(used.limit, kind), used.remaining(kind))
            if anthropic:
                reset = (timezone.now() + timedelta(seconds=used.reset)).isoformat(timespec="seconds")
                names = [f"anthropic-ratelimit-{kind}-{part}" for part in ("limit", "remaining", "reset")]
            else:
                reset = duration(used.reset)
                names = [f"x-ratelimit-{part}-{kind}" for part in ("limit", "remaining", "reset")]
            headers.update(zip(names, (str(values[0]), str(values[1]), reset), strict=True))
        return headers


class RateLimited(Exception):
    """A request over a limit: nothing was counted. The message says which limit, as OpenAI's does."""

    def __init__(self, standing: Standing, used: Used, kind: str, asked: int) -> None:
        self.standing, self.used, self.kind = standing, used, kind
        self.retry_after = max(1, math.ceil(used.reset))
        allowed = getattr(used.limit, kind)
        per_minute = "requests per min (RPM)" if kind == REQUESTS else "tokens per min (TPM)"
        window = f"{settings.LLMHUB_RATE_LIMIT_WINDOW_SECONDS:g} s"
        if asked > allowed:
            message = (
                f"Request too large for the {used.limit.name} on {per_minute}: Limit {allowed:,}, "
                f"Requested {asked:,} (input and max_tokens) in a window of {window}. "
                "Lower max_tokens or shorten the input; an admin can raise the limit in LLMHub."
            )
        else:
            message = (
                f"Rate limit reached for the {used.limit.name} on {per_minute}: Limit {allowed:,}, "
                f"Used {getattr(used, kind):,}, Requested {asked:,} in a window of {window}. "
                f"Please try again in {self.retry_after}s."
            )
        super().__init__(message)


class RateLimitsUnavailable(Exception):
    """Redis (REDIS_URL) did not answer, so no limit can be checked: the request is refused."""


@transaction.atomic
def change(owner: ApiKey | Team, requests: int | None, tokens: int | None, actor: Any) -> bool:
    """Set the limits of a key or a team (None: no limit), audited; False when nothing changed."""
    before = {"rpm": owner.requests_per_minute, "tpm": owner.tokens_per_minute}
    after = {"rpm": requests, "tpm": tokens}
    if before == after:
        return False
    owner.requests_per_minute, owner.tokens_per_minute = requests, tokens
    owner.save(update_fields=["requests_per_minute", "tokens_per_minute"])
    team = owner if isinstance(owner, Team) else owner.team
    # "rpm" and "tpm": the audit log hides the values of fields named like secrets ("token").
    log.record(actor, "rate_limits_changed", owner, team=team, before=before, after=after)
    return True


def limits_for(key: ApiKey) -> list[Limit]:
    """The limits a request with this key is subject to: the key's own and its team's."""
    team = key.team
    found = [
        Limit(f"key:{key.pk}", f"API key {key.name}", key.requests_per_minute, key.tokens_per_minute),
        Limit(f"team:{team.pk}", f"team {team.name}", team.requests_per_minute, team.tokens_per_minute),
    ]
    return [limit for limit in found if limit.requests or limit.tokens]


def admit_run(run: Run, key: ApiKey, save: bool = True) -> Standing | None:
    """Save a priced, pending run if the key's and its team's limits admit it (and count it), in
    one transaction; or raise RateLimited and save nothing: a refused request leaves no run.
    With Redis, a run the database then fails to save stays counted (an error errs towards the limit).
    When nothing is counted in the database (no limit, or Redis counts), the INSERT is the only write:
    it runs on its own, without a transaction around it (two statements fewer on every request).
    Without `save`, the run is counted only: its caller saves it next, with its reservation
    (budgets.reserve); a run the database then fails to save stays counted, as with Redis."""
    limits = limits_for(key)
    counted_in_database = bool(limits) and not settings.REDIS_URL
    with transaction.atomic() if counted_in_database and save else nullcontext():
        standing = admit(limits, tokens_of(run))
        if save:
            statements.insert(run)  # as save(force_insert=True) writes it, without composing the SQL
    return standing


def tokens_of(run: Run) -> int:
    """The tokens a request counts: its estimated input and its output cap for every choice."""
    choices = int((run.options or {}).get("n", 1))
    return run.estimated_input_tokens + run.max_tokens * choices


def admit(limits: list[Limit], tokens: int) -> Standing | None:
    """Count one request of `tokens` against every limit, or raise RateLimited and count nothing.
    None when no limit applies. The database backend writes in the caller's transaction, if any."""
    if not limits:
        return None
    limits = sorted(limits, key=lambda limit: limit.scope)  # a fixed order: no deadlock on PostgreSQL
    take = _take_redis if settings.REDIS_URL else _take_database
    admitted, windows = take(limits, tokens, settings.LLMHUB_RATE_LIMIT_WINDOW_SECONDS)
    if admitted:
        used = [
            Used(limit, r + 1, t + tokens, reset)
            for limit, (r, t, reset) in zip(limits, windows, strict=True)
        ]
        return Standing(tuple(used))
    standing = Standing(tuple(Used(limit, *window) for limit, window in zip(limits, windows, strict=True)))
    for used in standing.used:
        kind = _over(used.limit, used.requests, used.tokens, tokens)
        if kind is not None:
            raise RateLimited(standing, used, kind, 1 if kind == REQUESTS else tokens)
    raise RuntimeError("a rate limit backend refused a request no limit refuses")


def _over(limit: Limit, requests: int, tokens: int, asked: int) -> str | None:
    """The kind of limit one more request of `asked` tokens would go over (the rule of both backends)."""
    if limit.requests and requests + 1 > limit.requests:
        return REQUESTS
    if limit.tokens and tokens + asked > limit.tokens:
        return TOKENS
    return None


Windows = list[tuple[int, int, float]]  # per limit: requests and tokens before this one, seconds left


def _take_database(limits: list[Limit], tokens: int, window: float) -> tuple[bool, Windows]:
    now, length = timezone.now(), timedelta(seconds=window)
    scopes = [limit.scope for limit in limits]
    with transaction.atomic():
        RateWindow.objects.bulk_create(
            [RateWindow(scope=scope, started_at=now) for scope in scopes], ignore_conflicts=True
        )
        # Locked in scope order (PostgreSQL); SQLite's write lock is taken when the transaction begins.
        rows = {
            row.scope: row
            for row in RateWindow.objects.select_for_update().filter(scope__in=scopes).order_by("scope")
        }
        for row in rows.values():
            if row.started_at + length <= now:
                row.started_at, row.requests, row.tokens = now, 0, 0
        windows = [
            (rows[s].requests, rows[s].tokens, (rows[s].started_at + length - now).total_seconds())
            for s in scopes
        ]
        if any(_over(limit, r, t, tokens) for limit, (r, t, _) in zip(limits, windows, strict=True)):
            return False, windows
        for row in rows.values():
            row.requests, row.tokens = row.requests + 1, row.tokens + tokens
            row.save(update_fields=["started_at", "requests", "tokens"])
    return True, windows


# KEYS: one hash per limit. ARGV: the request's tokens, the window in ms, then each limit's
# requests and tokens (0: none). Returns 1 (admitted) or 0, then each window's requests, tokens
# and milliseconds left, as they were before this request.
TAKE = """
local asked, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local found, fresh, admitted = {}, {}, 1
for i, key in ipairs(KEYS) do
  local counts = redis.call('HMGET', key, 'requests', 'tokens')
  local left = redis.call('PTTL', key)
  local requests, tokens = tonumber(counts[1]) or 0, tonumber(counts[2]) or 0
  fresh[i] = left < 0
  if fresh[i] then requests, tokens, left = 0, 0, window end
  local max_requests, max_tokens = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  if (max_requests > 0 and requests + 1 > max_requests) or (max_tokens > 0 and tokens + asked > max_tokens) then
    admitted = 0
  end
  found[#found + 1] = {requests, tokens, left}
end
local answer = {admitted}
for i, key in ipairs(KEYS) do
  if admitted == 1 then
    redis.call('HINCRBY', key, 'requests', 1)
    redis.call('HINCRBY', key, 'tokens', asked)
    if fresh[i] then redis.call('PEXPIRE', key, window) end
  end
  for _, value in ipairs(found[i]) do answer[#answer + 1] = value end
end
return answer
"""


@functools.cache
def _script(url: str) -> Script:
    import redis  # here, not at the top: a hub without REDIS_URL never loads it (6 MB, bench/memory.py)

    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2).register_script(TAKE)


def _take_redis(limits: list[Limit], tokens: int, window: float) -> tuple[bool, Windows]:
    from redis import RedisError

    keys = [f"llmhub:ratelimit:{limit.scope}" for limit in limits]
    args: list[int] = [tokens, max(1, round(window * 1000))]
    for limit in limits:
        args += [limit.requests or 0, limit.tokens or 0]
    try:
        answer = _script(settings.REDIS_URL)(keys=keys, args=args)
    except RedisError as error:
        raise RateLimitsUnavailable(str(error)) from error
    values = [int(value) for value in answer[1:]]
    windows = [(values[i], values[i + 1], values[i + 2] / 1000) for i in range(0, len(values), 3)]
    return answer[0] == 1, windows


def duration(seconds: float) -> str:
    """A duration as OpenAI writes its reset headers (Go's format): "20ms", "1.5s", "6m0s"."""
    millis = max(0, round(seconds * 1000))
    if millis < 1000:
        return f"{millis}ms"
    minutes, rest = divmod(millis, 60_000)
    text = f"{rest / 1000:g}s"
    return f"{minutes}m{text}" if minutes else text
