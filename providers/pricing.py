"""Prices in Decimal USD per 1M tokens, and the arithmetic on them. No float touches money.

Prices come from the maintained `genai-prices` library (data bundled in its wheel, so offline),
can be overridden per model in the database, and are dated there (see `providers.models.Price`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Protocol

from providers.errors import UnpricedModel

if TYPE_CHECKING:
    from genai_prices.types import TieredPrices

PER_MILLION = Decimal(1_000_000)
CENT = Decimal("0.01")
LIBRARY_SOURCE = "genai-prices"


class _Priced(Protocol):
    id: str
    input_per_1m: Decimal | None
    output_per_1m: Decimal | None


class _CachePriced(Protocol):
    input_per_1m: Decimal
    output_per_1m: Decimal
    cache_read_per_1m: Decimal | None
    cache_write_per_1m: Decimal | None


class _Tokens(Protocol):
    input: int
    output: int
    cache_read: int
    cache_write: int


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


def usage_cost(price: _CachePriced, tokens: _Tokens) -> Decimal:
    """Exact USD for one generation: cached prompt tokens at the cache's read and write prices
    (as input where a price has none), the rest of the prompt as input, all output (reasoning
    included) as output. claude-haiku-4-5 ($1 in, $5 out, reads $0.10, writes $1.25) at 1,000 in
    of which 200 read and 100 written, 500 out: Decimal("0.003345")."""
    read, write = tokens.cache_read, tokens.cache_write
    if not all(isinstance(n, int) for n in (tokens.input, tokens.output, read, write)):
        raise TypeError("token counts are whole numbers")
    read_price = price.input_per_1m if price.cache_read_per_1m is None else price.cache_read_per_1m
    write_price = price.input_per_1m if price.cache_write_per_1m is None else price.cache_write_per_1m
    plain = max(0, tokens.input - read - write)
    total = (
        price.input_per_1m * plain
        + read_price * read
        + write_price * write
        + price.output_per_1m * tokens.output
    ) / PER_MILLION
    return total.normalize() if total else Decimal("0")


def worst_input_price(price: _CachePriced) -> Decimal:
    """The most one prompt token can cost: writing to the cache costs more than input on some
    providers, so a reservation prices every prompt token at the higher of the two."""
    if price.cache_write_per_1m is None:
        return price.input_per_1m
    return max(price.input_per_1m, price.cache_write_per_1m)


@dataclass(frozen=True)
class LibraryPrice:
    input_per_1m: Decimal
    output_per_1m: Decimal
    name: str
    context_window: int | None
    cache_read_per_1m: Decimal | None = None
    cache_write_per_1m: Decimal | None = None


def library_price(model: str, pricing_provider: str | None = None) -> LibraryPrice | None:
    """The pricing library's current price for a model, or None when it does not know the model.

    Tiered prices (Anthropic and Gemini charge more past 200k input tokens) give their base tier:
    a prompt past the tier is rejected by the context-window check long before it matters for
    most models, and the tier is noted in the catalogue for the rest.
    """
    # Imported when the catalogue is first priced, not at start-up: the library and pydantic add
    # 10 MB to an idle server, its price data 4 MB more when first read (bench/memory.py).
    from genai_prices import Usage, calc_price

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
        cache_read_per_1m=_base(prices.cache_read_mtok),
        cache_write_per_1m=_base(prices.cache_write_mtok),
    )


def _base(price: Decimal | TieredPrices | None) -> Decimal | None:
    from genai_prices.types import TieredPrices

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
