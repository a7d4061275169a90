"""Writing usage rows: token counts charged at the price in force, pointed at that price."""

from __future__ import annotations

import uuid
from decimal import Decimal

from asgiref.sync import sync_to_async

from providers.base import TokenCount
from providers.models import ProviderModel
from providers.pricing import cost as price_cost
from usage.models import UsageRecord


def record_usage(
    provider_id: str,
    model: str,
    tokens: TokenCount,
    source: str,
    run_id: str = "",
) -> UsageRecord:
    """Record one generation. An unpriced model gets a null cost, never $0."""
    row = ProviderModel.objects.filter(provider_id=provider_id, model_id=model).first()
    price = row.current_price() if row else None
    cost: Decimal | None = None
    if price is not None:
        cost = price_cost(price.input_per_1m, price.output_per_1m, tokens.input, tokens.output)
    return UsageRecord.objects.create(
        provider_id=provider_id,
        model=model,
        run_id=run_id or uuid.uuid4().hex,
        input_tokens=tokens.input,
        output_tokens=tokens.output,
        cost_usd=cost,
        price=price,
        source=source,
    )


arecord_usage = sync_to_async(record_usage)
