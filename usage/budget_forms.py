from __future__ import annotations

from decimal import Decimal

from django import forms

from usage.models import Budget

# Where a limit slider stops: fine steps for small budgets, coarse ones for large (any amount can
# still be typed in the number beside it).
SLIDER_STEPS = [
    Decimal(v)
    for v in (
        "0",
        "0.001",
        "0.002",
        "0.005",
        "0.01",
        "0.02",
        "0.05",
        "0.1",
        "0.2",
        "0.5",
        "1",
        "2",
        "5",
        "10",
        "20",
        "50",
        "100",
        "200",
        "500",
        "1000",
        "2000",
        "5000",
        "10000",
        "20000",
        "50000",
        "100000",
    )
]
LIMITS = ("daily_limit_usd", "monthly_limit_usd")


def plain(amount: Decimal | None) -> str:
    """A limit as typed: "5", "0.005", "1200" (never "5.000000" or "1.2E+3")."""
    return "" if amount is None else f"{amount.normalize():f}"


class BudgetForm(forms.ModelForm):
    """Limits with a slider and a number each; caps switched on with a toggle."""

    soft_cap_on = forms.BooleanField(required=False, label="Warn before a run above")
    hard_cap_on = forms.BooleanField(required=False, label="Never let a run write more than")
    alert_percent = forms.IntegerField(min_value=1, max_value=100, label="Alert me at", initial=80)

    class Meta:
        model = Budget
        fields = [
            "daily_limit_usd",
            "monthly_limit_usd",
            "per_run_soft_cap_tokens",
            "per_run_hard_cap_tokens",
        ]
        labels = {
            "daily_limit_usd": "Daily limit (USD)",
            "monthly_limit_usd": "Monthly limit (USD)",
            "per_run_soft_cap_tokens": "Soft cap (tokens)",
            "per_run_hard_cap_tokens": "Hard cap (tokens)",
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        budget = self.instance
        self.initial.setdefault("soft_cap_on", budget.per_run_soft_cap_tokens is not None)
        self.initial.setdefault("hard_cap_on", budget.per_run_hard_cap_tokens is not None)
        self.initial.setdefault("alert_percent", int(budget.alert_threshold * 100))
        for name in LIMITS:
            field = self.fields[name]
            field.min_value = Decimal("0")
            field.error_messages["min_value"] = (
                "A limit cannot be negative: 0 allows nothing, empty means no limit."
            )
            field.validators = [v for v in field.validators if not hasattr(v, "limit_value")]
            field.widget.attrs.update({"min": "0", "step": "any", "placeholder": "no limit"})
            self.initial[name] = plain(getattr(budget, name))

    def clean(self) -> dict:
        data = super().clean()
        for name in LIMITS:
            if data.get(name) is not None and data[name] < 0:
                self.add_error(name, self.fields[name].error_messages["min_value"])
        for toggle, field in (
            ("soft_cap_on", "per_run_soft_cap_tokens"),
            ("hard_cap_on", "per_run_hard_cap_tokens"),
        ):
            if not data.get(toggle):
                data[field] = None
            elif not data.get(field):
                self.add_error(field, "Give the number of tokens, or switch the cap off.")
        soft, hard = data.get("per_run_soft_cap_tokens"), data.get("per_run_hard_cap_tokens")
        if soft and hard and soft > hard:
            self.add_error(
                "per_run_soft_cap_tokens", "The soft cap warns below the hard cap: make it smaller."
            )
        daily, monthly = data.get("daily_limit_usd"), data.get("monthly_limit_usd")
        if daily is not None and monthly is not None and daily > monthly:
            self.add_error("daily_limit_usd", "A day cannot allow more than the whole month.")
        return data

    def save(self, commit: bool = True) -> Budget:
        budget = super().save(commit=False)
        budget.per_run_soft_cap_tokens = self.cleaned_data["per_run_soft_cap_tokens"]
        budget.per_run_hard_cap_tokens = self.cleaned_data["per_run_hard_cap_tokens"]
        budget.alert_threshold = Decimal(self.cleaned_data["alert_percent"]) / 100
        if commit:
            budget.save()
        return budget

    def sliders(self) -> list[dict]:
        """Each limit's number field with the slider position of its current value."""
        steps = ",".join(plain(step) for step in SLIDER_STEPS)
        found = []
        for name in LIMITS:
            bound = self[name]
            try:
                value = Decimal(str(bound.value())) if bound.value() not in (None, "") else Decimal("0")
            except ArithmeticError:
                value = Decimal("0")
            index = next((i for i, step in enumerate(SLIDER_STEPS) if step >= value), len(SLIDER_STEPS) - 1)
            found.append({"field": bound, "index": index, "steps": steps, "last": len(SLIDER_STEPS) - 1})
        return found

    def values(self) -> dict:
        budget = self.instance
        return {
            "daily_limit_usd": plain(budget.daily_limit_usd) or None,
            "monthly_limit_usd": plain(budget.monthly_limit_usd) or None,
            "per_run_soft_cap_tokens": budget.per_run_soft_cap_tokens,
            "per_run_hard_cap_tokens": budget.per_run_hard_cap_tokens,
            "alert_threshold": str(budget.alert_threshold),
        }
