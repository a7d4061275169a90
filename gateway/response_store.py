"""Responses kept for `store: true` (gateway.models.StoredResponse): found, continued, deleted and
expired per team. A team only ever sees its own: another team's id is answered exactly like an id
that never existed. A response past its team's retention period counts as gone even before the
periodic job deletes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Team
from audit import log
from gateway.models import ApiKey, StoredResponse


class NotFound(LookupError):
    """The id names no live stored response of this team; `missing` is the id that is gone."""

    def __init__(self, missing: str) -> None:
        super().__init__(missing)
        self.missing = missing


@dataclass(frozen=True)
class Conversation:
    """What `previous_response_id` continues: the chain's ids, oldest first, and its items in order
    (each response's input items, then its output items)."""

    ids: list[str] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)

    @property
    def last(self) -> str | None:
        return self.ids[-1] if self.ids else None


def live(team: Team, now: datetime | None = None) -> QuerySet[StoredResponse]:
    """The team's stored responses still within its retention period."""
    cutoff = (now or timezone.now()) - timedelta(days=team.stored_response_retention_days)
    return StoredResponse.objects.filter(team=team, created_at__gte=cutoff)


def get(team: Team, response_id: str) -> StoredResponse:
    found = live(team).filter(pk=response_id).first()
    if found is None:
        raise NotFound(response_id)
    return found


def conversation(team: Team, previous_id: str) -> Conversation:
    """The whole chain that ends with `previous_id`, in one query for its rows; NotFound names the
    first link that is gone (deleted, expired, or never this team's)."""
    previous = get(team, previous_id)
    ids = [*previous.ancestors, previous.pk]
    rows = {row.pk: row for row in live(team).filter(pk__in=previous.ancestors)}
    rows[previous.pk] = previous
    items: list[dict[str, Any]] = []
    for response_id in ids:
        row = rows.get(response_id)
        if row is None:
            raise NotFound(response_id)
        items += row.input_items + row.response.get("output", [])
    return Conversation(ids, items)


def save(
    key: ApiKey, response: dict[str, Any], input_items: list[dict[str, Any]], previous: Conversation
) -> StoredResponse:
    return StoredResponse.objects.create(
        id=response["id"],
        team_id=key.team_id,
        api_key=key,
        model=response["model"],
        ancestors=previous.ids,
        input_items=input_items,
        response=response,
        created_at=timezone.now(),
    )


def delete(team: Team, response_id: str) -> None:
    deleted, _ = live(team).filter(pk=response_id).delete()
    if not deleted:
        raise NotFound(response_id)


@dataclass(frozen=True)
class StoredResponseRetention:
    """The policy, as the audit entry names it."""

    pk: str = "each team's stored response retention"


def expire(now: datetime | None = None, actor: object = "system") -> int:
    """Delete every stored response past its team's retention period; returns how many. One delete
    per distinct retention setting, whatever the number of teams."""
    now = now or timezone.now()
    deleted = 0
    settings = (
        Team.objects.filter(stored_responses__isnull=False)
        .order_by()
        .values_list("stored_response_retention_days", flat=True)
        .distinct()
    )
    for days in sorted(settings):
        cutoff = now - timedelta(days=days)
        expired = StoredResponse.objects.filter(
            team__stored_response_retention_days=days, created_at__lt=cutoff
        )
        deleted += expired.delete()[0]
    if deleted:
        log.record(actor, "stored_responses_expired", StoredResponseRetention(), after={"deleted": deleted})
    return deleted
