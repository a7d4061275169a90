"""Writing usage rows: token counts charged at the price in force, rolled up by day in the same
transaction, then any budget alert the new spend crosses."""

from __future__ import annotations

import uuid
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.db import transaction

from accounts.models import Team, User
from providers.base import TokenCount
from providers.models import Price, price_in_force
from providers.pricing import cost as price_cost
from usage import alerts, rollups
from usage.models import UsageRecord


@transaction.atomic
def record_usage(
    provider_id: str,
    model: str,
    tokens: TokenCount,
    source: str,
    run_id: str = "",
    team: Team | None = None,
    user: User | None = None,
    api_key=None,
) -> UsageRecord:
    """Record one generation. An unpriced model gets a null cost, never $0."""
    price = price_in_force(Price.objects.filter(model__provider_id=provider_id, model__model_id=model))
    cost: Decimal | None = None
    if price is not None:
        cost = price_cost(price.input_per_1m, price.output_per_1m, tokens.input, tokens.output)
    record = UsageRecord.objects.create(
        provider_id=provider_id,
        model=model,
        run_id=run_id or uuid.uuid4().hex,
        input_tokens=tokens.input,
        output_tokens=tokens.output,
        cost_usd=cost,
        price=price,
        source=source,
        team=team,
        user=user,
        api_key=api_key,
    )
    rollups.add(record)
    if team is not None and cost:
        alerts.check(team, provider_id, api_key.pk if api_key else None)
    return record


arecord_usage = sync_to_async(record_usage)
