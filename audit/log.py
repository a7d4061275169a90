"""Writing audit entries."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Team
from audit.models import AuditEntry

# Keys whose values are never stored, whatever a caller passes: the log says a key changed, not what to.
SECRET_KEYS = ("api_key", "key", "secret", "password", "token", "credentials")


# The hash an empty log's first entry is chained to.
GENESIS = "0" * 64


def record(
    actor: Any,
    action: str,
    obj: Any,
    *,
    team: Team | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry: `record(user, "provider_enabled", provider, before={...}, after={...})`.
    `actor` is a user, or a name for what acted ("manage.py rotate_credentials"); `obj` a row, or
    a name for what it was done to (the user name typed into a failed sign-in)."""
    is_user = actor is not None and getattr(actor, "is_authenticated", False)
    entry = AuditEntry(
        actor=actor if is_user else None,
        actor_name=actor.get_username() if is_user else str(actor or "system"),
        team=team if team is not None else getattr(obj, "team", None),
        action=action,
        object_type=type(obj).__name__.lower() if hasattr(obj, "pk") else "name",
        object_id=str(getattr(obj, "pk", obj))[:300],
        before=scrub(before or {}),
        after=scrub(after or {}),
        created_at=timezone.now(),
    )
    with transaction.atomic():
        # One writer at a time appends to the chain: on SQLite the write lock the transaction takes
        # when it begins (transaction_mode IMMEDIATE), on PostgreSQL an advisory lock.
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK])
        previous = AuditEntry.objects.order_by("-pk").values_list("chain_hash", flat=True).first()
        entry.chain_hash = chain_hash(previous or GENESIS, entry)
        entry.save()
    return entry


CHAIN_LOCK = 0x4C4C4D48  # "LLMH": the advisory lock the audit chain's writers take on PostgreSQL


def chain_hash(previous: str, entry: AuditEntry) -> str:
    """SHA-256 of the previous entry's hash and this entry's content, in a canonical form that
    reads the same back from either database (sorted keys, UTC time to the microsecond)."""
    content = [
        previous,
        entry.actor_id,
        entry.actor_name,
        entry.team_id,
        entry.action,
        entry.object_type,
        entry.object_id,
        entry.before,
        entry.after,
        entry.created_at.astimezone(UTC).isoformat(timespec="microseconds"),
    ]
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def first_broken(entries: Iterable[AuditEntry]) -> AuditEntry | None:
    """The first entry, in order of insertion, whose hash does not match its content and place."""
    previous = GENESIS
    for entry in entries:
        if entry.chain_hash != chain_hash(previous, entry):
            return entry
        previous = entry.chain_hash
    return None


def scrub(values: dict[str, Any]) -> dict[str, Any]:
    clean = {}
    for name, value in values.items():
        if any(part in name.lower() for part in SECRET_KEYS) and name.lower() != "masked_key":
            clean[name] = "(changed)" if value else ""
        elif isinstance(value, dict):
            clean[name] = scrub(value)
        else:
            clean[name] = (
                value if isinstance(value, (str, int, float, bool, type(None), list)) else str(value)
            )
    return clean
