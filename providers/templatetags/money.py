from decimal import Decimal

from django import template

from providers.pricing import format_price, format_usd

register = template.Library()


@register.filter
def usd(amount: Decimal | None) -> str:
    """A cost: $0.0075, $12.50, or "unpriced"."""
    return format_usd(amount)


@register.filter
def price(amount: Decimal | None) -> str:
    """A price per 1M tokens: $2.50, $0.075."""
    return format_price(amount)
