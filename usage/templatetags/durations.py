from __future__ import annotations

from datetime import timedelta

from django import template

register = template.Library()


@register.filter
def seconds(value: timedelta | None) -> str:
    """A run's latency: "0.42 s", "12.3 s", "2 min 05 s"; "—" when unknown."""
    if value is None:
        return "—"
    total = value.total_seconds()
    if total < 10:
        return f"{total:.2f} s"
    if total < 60:
        return f"{total:.1f} s"
    minutes, rest = divmod(round(total), 60)
    return f"{minutes} min {rest:02d} s"
