from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

# Past these a limit is a typing mistake, not a limit (the largest providers allow a few million
# requests and a few billion tokens a minute).
MOST_REQUESTS_PER_MINUTE = 1_000_000
MOST_TOKENS_PER_MINUTE = 10_000_000_000


def _per_minute(label: str, most: int) -> forms.IntegerField:
    return forms.IntegerField(
        label=label,
        required=False,
        min_value=0,
        max_value=most,
        widget=forms.NumberInput({"min": "0", "step": "1", "placeholder": "no limit"}),
        error_messages={
            "invalid": "Enter a whole number, or leave it empty for no limit.",
            "min_value": "A limit cannot be negative: leave it empty (or 0) for no limit.",
            "max_value": f"At most {most:,}: leave it empty for no limit.",
        },
    )


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        widget=forms.TextInput({"placeholder": "CI summarizer"}),
        help_text="Say which program uses it: you will recognize it in spend and the audit log.",
    )
    allowed_models = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every model of the team, aliases included.",
    )
    daily_limit_usd = forms.DecimalField(
        label="Daily budget (USD)", required=False, min_value=Decimal("0"), max_digits=18, decimal_places=6
    )
    monthly_limit_usd = forms.DecimalField(
        label="Monthly budget (USD)", required=False, min_value=Decimal("0"), max_digits=18, decimal_places=6
    )
    allow_unpriced = forms.BooleanField(
        label="May run models with no known price",
        required=False,
        help_text="Their cost cannot be shown or counted against budgets.",
    )
    requests_per_minute = _per_minute("Requests per minute", MOST_REQUESTS_PER_MINUTE)
    tokens_per_minute = _per_minute("Tokens per minute", MOST_TOKENS_PER_MINUTE)

    def __init__(self, groups: list[tuple[str, list[tuple[str, str]]]], *args: Any, **kwargs: Any) -> None:
        """`groups`: [(provider name, [(ref, model name), ...]), ...], as the picker shows them."""
        super().__init__(*args, **kwargs)
        self.fields["allowed_models"].choices = groups

    def model_groups(self) -> list[dict]:
        """The picker's groups with each option's ticked state, for the template."""
        chosen = set(self["allowed_models"].value() or [])
        return [
            {"name": group, "options": [(value, label, value in chosen) for value, label in options]}
            for group, options in self.fields["allowed_models"].choices
        ]


class RateLimitsForm(forms.Form):
    """Requests and tokens per minute of an API key or a team; empty or 0: no limit."""

    requests_per_minute = _per_minute("Requests per minute", MOST_REQUESTS_PER_MINUTE)
    tokens_per_minute = _per_minute("Tokens per minute", MOST_TOKENS_PER_MINUTE)

    def clean(self) -> dict:
        data = super().clean()
        for name in ("requests_per_minute", "tokens_per_minute"):
            if name in data and not data[name]:
                data[name] = None
        return data


class AliasForm(forms.Form):
    name = forms.SlugField(max_length=64, widget=forms.TextInput({"placeholder": "fast"}))
    target = forms.ChoiceField(label="Model")

    def __init__(self, choices: list[str], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["target"].choices = [(c, c) for c in choices]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if name == "default":
            raise forms.ValidationError('"default" always means the team default model.')
        return name
