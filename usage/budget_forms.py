from __future__ import annotations

from decimal import Decimal

from django import forms

from usage.models import Budget


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
        labels = {"daily_limit_usd": "Daily limit (USD)", "monthly_limit_usd": "Monthly limit (USD)",
                  "per_run_soft_cap_tokens": "Soft cap (tokens)", "per_run_hard_cap_tokens": "Hard cap (tokens)"}  # fmt: skip

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        budget = self.instance
        self.initial.setdefault("soft_cap_on", budget.per_run_soft_cap_tokens is not None)
        self.initial.setdefault("hard_cap_on", budget.per_run_hard_cap_tokens is not None)
        self.initial.setdefault("alert_percent", int(budget.alert_threshold * 100))
        for name in ("daily_limit_usd", "monthly_limit_usd"):
            self.fields[name].widget.attrs.update({"min": "0", "step": "0.01"})

    def clean(self) -> dict:
        data = super().clean()
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

    def values(self) -> dict:
        budget = self.instance
        return {"daily_limit_usd": str(budget.daily_limit_usd), "monthly_limit_usd": str(budget.monthly_limit_usd),
                "per_run_soft_cap_tokens": budget.per_run_soft_cap_tokens,
                "per_run_hard_cap_tokens": budget.per_run_hard_cap_tokens,
                "alert_threshold": str(budget.alert_threshold)}  # fmt: skip
