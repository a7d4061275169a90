"""Writing audit entries."""

from __future__ import annotations

from typing import Any

from accounts.models import Team
from audit.models import AuditEntry

# Keys whose values are never stored, whatever a caller passes: the log says a key changed, not what to.
SECRET_KEYS = ("api_key", "key", "secret", "password", "token", "credentials")


def record(
    actor: Any,
    action: str,
    obj: Any,
    *,
    team: Team | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry: `record(user, "provider_enabled", provider, before={...}, after={...})`."""
    is_user = actor is not None and getattr(actor, "is_authenticated", False)
    return AuditEntry.objects.create(
        actor=actor if is_user else None,
        actor_name=actor.get_username() if is_user else str(actor or "system"),
        team=team if team is not None else getattr(obj, "team", None),
        action=action,
        object_type=type(obj).__name__.lower(),
        object_id=str(getattr(obj, "pk", obj)),
        before=scrub(before or {}),
        after=scrub(after or {}),
    )


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
