"""Prices in Decimal USD per 1M tokens, and the arithmetic on them. No float touches money.

Prices come from the maintained `genai-prices` library (data bundled in its wheel, so offline),
can be overridden per model in the database, and are dated there (see `providers.models.Price`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol

from genai_prices import Usage, calc_price
from genai_prices.types import TieredPrices

from providers.errors import UnpricedModel

PER_MILLION = Decimal(1_000_000)
CENT = Decimal("0.01")
LIBRARY_SOURCE = "genai-prices"


class _Priced(Protocol):
    id: str
    input_per_1m: Decimal | None
    output_per_1m: Decimal | None


@dataclass(frozen=True)
class ModelPricing:
    model: str
    input_per_1m: Decimal
    output_per_1m: Decimal

    @classmethod
    def of(cls, info: _Priced) -> ModelPricing:
        if info.input_per_1m is None or info.output_per_1m is None:
            raise UnpricedModel(info.id)
        return cls(info.id, info.input_per_1m, info.output_per_1m)

    def cost(self, input_tokens: int, output_tokens: int) -> Decimal:
        return cost(self.input_per_1m, self.output_per_1m, input_tokens, output_tokens)


def cost(input_per_1m: Decimal, output_per_1m: Decimal, input_tokens: int, output_tokens: int) -> Decimal:
    """Exact USD: gpt-4o ($2.50 / $10.00) at 1,000 in + 500 out is Decimal("0.0075")."""
    if not isinstance(input_tokens, int) or not isinstance(output_tokens, int):
        raise TypeError("token counts are whole numbers")
    total = (input_per_1m * input_tokens + output_per_1m * output_tokens) / PER_MILLION
    return total.normalize() if total else Decimal("0")


@dataclass(frozen=True)
class LibraryPrice:
    input_per_1m: Decimal
    output_per_1m: Decimal
    name: str
    context_window: int | None


def library_price(model: str, pricing_provider: str | None = None) -> LibraryPrice | None:
    """The pricing library's current price for a model, or None when it does not know the model.

    Tiered prices (Anthropic and Gemini charge more past 200k input tokens) give their base tier:
    a prompt past the tier is rejected by the context-window check long before it matters for
    most models, and the tier is noted in the catalogue for the rest.
    """
    try:
        found = calc_price(Usage(input_tokens=0, output_tokens=0), model, provider_id=pricing_provider)
    except LookupError:
        return None
    prices = found.model_price
    input_price, output_price = _base(prices.input_mtok), _base(prices.output_mtok)
    if input_price is None or output_price is None:
        return None
    return LibraryPrice(
        input_per_1m=input_price,
        output_per_1m=output_price,
        name=found.model.name or model,
        context_window=found.model.context_window,
    )


def _base(price: Decimal | TieredPrices | None) -> Decimal | None:
    if isinstance(price, TieredPrices):
        return Decimal(price.base)
    return None if price is None else Decimal(price)


def format_usd(amount: Decimal | None) -> str:
    """The one way a cost is written: cents from $1 up ($12.50, $1,234.00), two significant digits
    below without trailing zeros past the cents ($0.60, $0.01, $0.018, $0.0075, $0.000012), "$0.00"
    for nothing, "unpriced" for an unknown cost.
    static/js/money.js writes amounts on charts the same way."""
    if amount is None:
        return "unpriced"
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if amount >= 1 or amount == 0:
        return f"{sign}${amount.quantize(CENT, ROUND_HALF_UP):,.2f}"
    rounded = amount.quantize(Decimal(1).scaleb(amount.adjusted() - 1), ROUND_HALF_UP)
    if rounded >= 1:  # 0.996 rounds up to a dollar
        return f"{sign}${rounded.quantize(CENT):,.2f}"
    # No trailing zero past the cents: $0.01 and $0.10, not $0.010 or $0.100.
    rounded = max(rounded.normalize(), rounded.quantize(CENT), key=lambda d: -d.as_tuple().exponent)
    return f"{sign}${rounded:f}"


def format_price(amount: Decimal | None) -> str:
    """A price per 1M tokens, with cents always and more digits only when they matter: $2.50, $0.075."""
    if amount is None:
        return "unpriced"
    digits = max(2, -amount.normalize().as_tuple().exponent)
    return f"${amount:,.{digits}f}"
