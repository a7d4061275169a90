from __future__ import annotations

from decimal import Decimal

import pytest

from providers import pricing
from providers.base import ModelInfo, TokenCount
from providers.errors import UnpricedModel
from providers.pricing import ModelPricing, format_usd, library_price


def test_gpt_4o_at_1000_in_and_500_out_costs_exactly_0_0075():
    price = library_price("gpt-4o", "openai")
    assert price.input_per_1m == Decimal("2.5") and price.output_per_1m == Decimal("10")
    assert pricing.cost(price.input_per_1m, price.output_per_1m, 1000, 500) == Decimal("0.0075")


@pytest.mark.parametrize(
    ("model", "provider", "expected"),
    [("claude-sonnet-4-5", "anthropic", Decimal("0.0105")), ("gpt-4o-mini", "openai", Decimal("0.00045"))],
)
def test_it_prices_the_builtin_models_from_the_library(model, provider, expected):
    price = library_price(model, provider)
    assert pricing.cost(price.input_per_1m, price.output_per_1m, 1000, 500) == expected


def test_tiered_prices_give_their_base_tier():
    assert library_price("claude-sonnet-4-5", "anthropic").input_per_1m == Decimal("3")


def test_an_unknown_model_has_no_library_price():
    assert library_price("my-finetune-7b") is None


def test_cost_is_exact_for_amounts_a_float_gets_wrong():
    # 0.1 + 0.2 != 0.3 in float; in Decimal it is exact.
    assert pricing.cost(Decimal("0.1"), Decimal("0.2"), 1_000_000, 1_000_000) == Decimal("0.3")


def test_token_counts_must_be_whole_numbers():
    with pytest.raises(TypeError):
        pricing.cost(Decimal("1"), Decimal("1"), 1.5, 0)


def test_a_model_without_a_price_is_unpriced_not_free():
    info = ModelInfo(id="mystery", display_name="Mystery", context_window=1000, max_output=100)
    assert not info.priced
    with pytest.raises(UnpricedModel):
        ModelPricing.of(info)


def test_a_model_with_a_zero_price_is_free_on_purpose():
    info = ModelInfo("llama3", "Llama 3", 8192, 2048, input_per_1m=Decimal("0"), output_per_1m=Decimal("0"))
    assert ModelPricing.of(info).cost(TokenCount(10, 10).input, 10) == Decimal("0")


# The one money format: cents from $1 up, two significant digits below, half up.
MONEY_CASES = [
    ("0.0075", "$0.0075"),
    ("12.5", "$12.50"),
    ("1234.567", "$1,234.57"),
    ("0", "$0.00"),
    ("0.000012", "$0.000012"),
    ("0.0000123", "$0.000012"),
    ("0.0105", "$0.011"),
    ("0.605", "$0.61"),
    ("0.6", "$0.60"),
    ("0.0017", "$0.0017"),
    ("0.099999", "$0.10"),
    ("0.996", "$1.00"),
    ("0.000000123", "$0.00000012"),
    ("0.01", "$0.01"),  # no trailing zero past the cents
    ("0.0050", "$0.005"),
    ("0.00999", "$0.01"),
]


@pytest.mark.parametrize(("amount", "shown"), [*MONEY_CASES, (None, "unpriced")])
def test_it_formats_usd_keeping_small_amounts_readable(amount, shown):
    assert format_usd(None if amount is None else Decimal(amount)) == shown
