from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django import forms

from usage.models import CallKind, Run

DATE_ERROR = "Dates are written as YYYY-MM-DD"


class PlaygroundForm(forms.Form):
    model = forms.ChoiceField()
    system_prompt = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), label="System prompt"
    )
    message = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), label="Message")
    max_tokens = forms.IntegerField(min_value=1, max_value=200_000, initial=1024, label="Max output tokens")
    temperature = forms.DecimalField(min_value=0, max_value=2, decimal_places=2, required=False)

    def __init__(self, choices: list, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = choices


def _date_field(label: str) -> forms.DateField:
    return forms.DateField(
        label=label,
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        error_messages={"invalid": f"{DATE_ERROR}."},
    )


def model_groups(pairs: list[tuple[str, str]]) -> list[tuple[str, list[tuple[str, str]]]]:
    """(provider, model) pairs as grouped <select> choices of "provider/model" refs."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for provider, model in sorted(set(pairs)):
        groups.setdefault(provider, []).append((f"{provider}/{model}", model))
    return list(groups.items())


class DateRangeForm(forms.Form):
    """A date range (`from`, `to`: Python keywords, hence added in __init__), at most a year long."""

    def __init__(self, data: Any, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        self.fields["from"] = _date_field("From")
        self.fields["to"] = _date_field("To")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = data.get("from"), data.get("to")
        if start and end and (end < start or (end - start).days > 366):
            self.add_error("to", "Pick a range of at most a year, ending after it starts.")
        return data

    def value(self, name: str, default: Any = None) -> Any:
        """A field's cleaned value; the default when it was empty or invalid."""
        if not self.is_valid() and name in self.errors:
            return default
        return self.cleaned_data.get(name) or default

    def range(self, default: tuple[date, date]) -> tuple[date, date]:
        """The chosen range, open ends filled from `default`; `default` when the range is invalid."""
        if not self.is_valid() and ("from" in self.errors or "to" in self.errors):
            return default
        return self.value("from", default[0]), self.value("to", default[1])


class FiltersForm(DateRangeForm):
    """Shared by the spend page and the requests log: a date range, a provider, a model, a key.
    Every option stays listed whatever is chosen; an invalid value is explained and left out."""

    provider = forms.ChoiceField(required=False)
    model = forms.ChoiceField(required=False, label="Model used")
    key = forms.ChoiceField(required=False, label="API key")
    page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, data: Any, *, pairs: list[tuple[str, str]], keys: list, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        self.fields["provider"].choices = [("", "All")] + [(p, p) for p in sorted({p for p, _ in pairs})]
        self.fields["model"].choices = [("", "All")] + model_groups(pairs)
        self.fields["key"].choices = [("", "Any, and people")] + [
            (str(k.pk), f"{k.name} ({k.masked})") for k in keys
        ]
        if not keys:
            self.fields["key"].widget = forms.HiddenInput()


class SpendFiltersForm(FiltersForm):
    team = forms.ChoiceField(required=False)
    kind = forms.ChoiceField(
        required=False,
        label="Calls",
        choices=[("", "All calls"), (CallKind.GENERATION, "Chat"), (CallKind.EMBEDDINGS, "Embeddings")],
    )

    field_order = ["team", "kind", "provider", "model", "key", "from", "to"]

    def __init__(self, data: Any, *, teams: list, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        self.fields["team"].choices = [("", "All my teams")] + [(str(t.pk), t.name) for t in teams]
        if len(teams) < 2:
            self.fields["team"].widget = forms.HiddenInput()
        self.order_fields(self.field_order)


class RunFiltersForm(FiltersForm):
    """The requests log's filters; the team only for instance staff."""

    team = forms.ChoiceField(required=False)
    person = forms.ChoiceField(required=False)
    status = forms.ChoiceField(required=False, choices=[("", "Any")] + Run.Status.choices)

    field_order = ["team", "person", "key", "provider", "model", "status", "from", "to"]

    def __init__(self, data: Any, *, teams: list | None, people: list, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        if teams is None:
            del self.fields["team"]
        else:
            self.fields["team"].choices = [("", "All teams")] + [(str(t.pk), t.name) for t in teams]
        self.fields["person"].choices = [("", "Anyone")] + [(str(u.pk), u.get_username()) for u in people]
        self.order_fields(self.field_order)

    def bounds(self) -> tuple[date | None, date | None]:
        """[start, end) of the chosen dates, either open; both open when the range is invalid."""
        if not self.is_valid() and ("from" in self.errors or "to" in self.errors):
            return None, None
        end = self.value("to")
        return self.value("from"), end + timedelta(days=1) if end else None


class DismissAlertForm(forms.Form):
    budget = forms.IntegerField(min_value=1)
    period = forms.ChoiceField(choices=[("day", "day"), ("month", "month")])
    next = forms.CharField(required=False)


class FallbackForm(forms.Form):
    """A fallback policy: on or off, the models in order, retries, ask mode. `order` keeps the
    order the page sent; `add` appends a model picked from the list."""

    enabled = forms.BooleanField(required=False)
    order = forms.MultipleChoiceField(
        required=False, error_messages={"invalid_choice": "%(value)s is not one of your team's models."}
    )
    add = forms.ChoiceField(
        required=False, error_messages={"invalid_choice": "%(value)s is not one of your team's models."}
    )
    retry_count = forms.IntegerField(
        min_value=0,
        max_value=10,
        error_messages={
            "invalid": "Retries: a whole number from 0 to 10.",
            "min_value": "Retries: a whole number from 0 to 10.",
            "max_value": "Retries: a whole number from 0 to 10.",
            "required": "Retries: a whole number from 0 to 10.",
        },
    )
    ask_before_switching = forms.BooleanField(required=False)

    def __init__(self, groups: list, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["order"].choices = groups
        self.fields["add"].choices = [("", "Add a model…"), *groups]

    def models(self) -> list[str]:
        """The chosen order with the added model last, each once."""
        order = [
            *self.cleaned_data["order"],
            *([self.cleaned_data["add"]] if self.cleaned_data["add"] else []),
        ]
        return list(dict.fromkeys(order))
