"""The audit log as people read it: actions and fields in words, objects by name, values formatted
(money, percentages, lists), and what an entry changed set apart from what it did not."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError

from audit.models import AuditEntry
from providers.pricing import format_usd

ACTIONS = {
    "admin_created": "First admin created",
    "account_created": "Account created",
    "api_key_created": "API key created",
    "api_key_revoked": "API key revoked",
    "automation_created": "Automation created",
    "automation_updated": "Automation changed",
    "automation_deleted": "Automation deleted",
    "budget_alert": "Budget alert",
    "budget_changed": "Budget changed",
    "credentials_added": "Provider connected",
    "credentials_updated": "Provider key replaced",
    "credentials_removed": "Provider removed",
    "custom_provider_defined": "Custom provider defined",
    "custom_provider_updated": "Custom provider changed",
    "custom_provider_removed": "Custom provider removed",
    "default_model_changed": "Default model changed",
    "fallback_changed": "Fallback settings changed",
    "fallback_triggered": "Fallback used",
    "invitation_accepted": "Invitation accepted",
    "invitation_revoked": "Invitation revoked",
    "member_invited": "Person invited",
    "member_removed": "Person removed",
    "model_alias_added": "Model alias added",
    "model_alias_removed": "Model alias removed",
    "model_changed": "Automation model changed",
    "password_changed": "Password changed",
    "provider_disabled": "Provider disabled",
    "provider_enabled": "Provider enabled",
    "provider_updated": "Provider changed",
    "rate_limits_changed": "Rate limits changed",
    "role_changed": "Role changed",
    "stored_responses_expired": "Stored API responses deleted (retention)",
    "team_created": "Team created",
    "team_renamed": "Team renamed",
}

FIELDS = {
    "alert_threshold": "Alert at",
    "allow_unpriced": "May run unpriced models",
    "allowed_models": "Allowed models",
    "ask_before_switching": "Ask before switching",
    "daily_limit_usd": "Daily limit",
    "email": "E-mail",
    "enabled": "Enabled",
    "endpoint": "Endpoint",
    "expires_at": "Expires",
    "inherit": "Follows the team's settings",
    "kind": "Kind",
    "limit": "Limit",
    "limit_usd": "Limit",
    "masked_key": "Key",
    "model": "Model",
    "monthly_limit_usd": "Monthly limit",
    "name": "Name",
    "order": "Fallback order",
    "per_run_hard_cap_tokens": "Hard cap (tokens)",
    "per_run_soft_cap_tokens": "Soft cap (tokens)",
    "period": "Period",
    "reason": "Reason",
    "rpm": "Requests per minute",
    "retry_count": "Retries",
    "revoked": "Revoked",
    "role": "Role",
    "sign_in": "Sign-in",
    "spent": "Spent",
    "spent_usd": "Spent",
    "stored_response_retention_days": "Keep stored API responses (days)",
    "target": "Model",
    "team": "Team",
    "tpm": "Tokens per minute",
    "user": "Person",
    "username": "Username",
    "validated": "Connection checked",
}
MONEY = {"daily_limit_usd", "monthly_limit_usd", "spent", "spent_usd", "limit", "limit_usd"}
PERCENT = {"alert_threshold"}
DATES = {"expires_at"}
# What an empty list means for a field, where "none" would mislead.
EMPTY_LISTS = {"allowed_models": "every model of the team", "order": "no fallback model"}
ROLES = {"admin": "Team admin", "member": "Member"}

# object_type -> (model, what it is called in words, how one is named)
OBJECTS: dict[str, tuple[str, str, Any]] = {
    "provider": ("providers.Provider", "provider", lambda o: o.display_name),
    "customkind": ("providers.CustomKind", "custom provider", str),
    "budget": ("usage.Budget", "budget", None),  # named by usage.budgets.label
    "run": ("usage.Run", "run", lambda o: f"{o.model_requested} at {o.created_at:%Y-%m-%d %H:%M}"),
    "user": ("accounts.User", "person", lambda o: o.get_username()),
    "team": ("accounts.Team", "team", lambda o: o.name),
    "invitation": (
        "accounts.Invitation",
        "invitation",
        lambda o: o.email or f"link as {o.get_role_display()}",
    ),
    "automation": ("automations.Automation", "automation", lambda o: o.name),
    "apikey": ("gateway.ApiKey", "API key", lambda o: f"{o.name} ({o.masked})"),
    "modelalias": ("gateway.ModelAlias", "model alias", str),
}


@dataclass(frozen=True)
class Change:
    label: str
    before: str | None  # None: not in the entry's before
    after: str | None
    changed: bool


@dataclass(frozen=True)
class ReadableEntry:
    entry: AuditEntry
    action: str
    object_kind: str
    object_name: str
    changes: list[Change]


def action_label(action: str) -> str:
    return ACTIONS.get(action, action.replace("_", " ").capitalize())


def object_kind(object_type: str) -> str:
    return OBJECTS[object_type][1] if object_type in OBJECTS else object_type


def readable(entries: Iterable[AuditEntry]) -> list[ReadableEntry]:
    """The entries of a page, their objects named with one query per kind of object."""
    entries = list(entries)
    names = _names(entries)
    return [
        ReadableEntry(
            entry=e,
            action=action_label(e.action),
            object_kind=object_kind(e.object_type),
            object_name=names.get((e.object_type, e.object_id)) or _fallback_name(e),
            changes=changes(e.before, e.after),
        )
        for e in entries
    ]


def _names(entries: list[AuditEntry]) -> dict[tuple[str, str], str]:
    wanted: dict[str, set[str]] = defaultdict(set)
    for entry in entries:
        if entry.object_type in OBJECTS:
            wanted[entry.object_type].add(entry.object_id)
    names = {}
    for object_type, ids in wanted.items():
        model_name, _, name_of = OBJECTS[object_type]
        model = apps.get_model(model_name)
        rows = model.objects.filter(pk__in=[i for i in ids if _valid_pk(model, i)])
        if object_type == "budget":
            from usage.budgets import label

            rows, name_of = rows.select_related("team", "provider", "api_key"), label
        for row in rows:
            names[(object_type, str(row.pk))] = name_of(row)
    return names


def _valid_pk(model, value: str) -> bool:
    try:
        model._meta.pk.to_python(value)
    except ValidationError:  # a malformed id names nothing; it is shown as stored
        return False
    return True


def _fallback_name(entry: AuditEntry) -> str:
    """An object since deleted: the name the entry itself kept, else its id."""
    for values in (entry.before, entry.after):
        for key in ("name", "user", "username"):
            if isinstance(values, dict) and values.get(key):
                return f"{values[key]} (removed)"
    return f"#{entry.object_id} (removed)"


def changes(before: dict, after: dict) -> list[Change]:
    """Every field of an entry in order, with whether this entry changed it."""
    before, after = before or {}, after or {}
    rows = []
    for name in dict.fromkeys([*before, *after]):
        was = format_value(name, before[name]) if name in before else None
        now = format_value(name, after[name]) if name in after else None
        changed = bool(before) and bool(after) and was != now
        rows.append(Change(FIELDS.get(name, name.replace("_", " ").capitalize()), was, now, changed))
    return rows


def format_value(name: str, value: Any) -> str:
    if name in MONEY:
        amount = _decimal(value)
        return format_usd(amount) if amount is not None else "no limit"
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        if not value:
            return EMPTY_LISTS.get(name, "none")
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{FIELDS.get(k, k)}: {format_value(k, v)}" for k, v in value.items())
    if name in DATES:
        try:
            return datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M")
        except ValueError:
            return str(value)
    if name in PERCENT:
        share = _decimal(value)
        return f"{(share * 100).normalize():f} %" if share is not None else str(value)
    if name == "role":
        return ROLES.get(str(value), str(value))
    return str(value)


def _decimal(value: Any) -> Decimal | None:
    if value in ("None", None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None
