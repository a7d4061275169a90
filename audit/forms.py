from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.utils import timezone

from audit.display import action_label, object_kind
from audit.models import AuditEntry


class AuditFiltersForm(forms.Form):
    actor = forms.ChoiceField(required=False, label="Who")
    action = forms.ChoiceField(required=False, label="What")
    object = forms.ChoiceField(required=False, label="Object")
    object_id = forms.CharField(required=False, widget=forms.HiddenInput)
    page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, data: Any, *, entries: QuerySet[AuditEntry], **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        self.fields["from"] = forms.DateField(
            required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
        )
        self.fields["to"] = forms.DateField(
            required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
        )
        # Every option the entries hold, whatever is chosen (three small DISTINCT queries).
        actors = sorted(set(entries.order_by().values_list("actor_name", flat=True).distinct()))
        actions = sorted(
            set(entries.order_by().values_list("action", flat=True).distinct()), key=action_label
        )
        objects = sorted(set(entries.order_by().values_list("object_type", flat=True).distinct()))
        self.fields["actor"].choices = [("", "Anyone")] + [(a, a) for a in actors]
        self.fields["action"].choices = [("", "Any change")] + [(a, action_label(a)) for a in actions]
        self.fields["object"].choices = [("", "Anything")] + [
            (o, object_kind(o)[:1].upper() + object_kind(o)[1:]) for o in objects
        ]
        self.order_fields(["actor", "action", "object", "from", "to"])

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("from") and data.get("to") and data["to"] < data["from"]:
            self.add_error("to", "The range ends before it starts.")
        return data

    def apply(self, entries: QuerySet[AuditEntry]) -> QuerySet[AuditEntry]:
        """The entries the valid filters select (an invalid one is explained and left out)."""
        data = {name: value for name, value in self.cleaned_data.items() if name not in self.errors}
        if data.get("actor"):
            entries = entries.filter(actor_name=data["actor"])
        if data.get("action"):
            entries = entries.filter(action=data["action"])
        if data.get("object"):
            entries = entries.filter(object_type=data["object"])
            if data.get("object_id"):
                entries = entries.filter(object_id=data["object_id"])
        zone = timezone.get_current_timezone()
        if data.get("from") and "to" not in self.errors:
            entries = entries.filter(created_at__gte=datetime.combine(data["from"], time.min, zone))
        if data.get("to"):
            entries = entries.filter(
                created_at__lt=datetime.combine(data["to"] + timedelta(days=1), time.min, zone)
            )
        return entries
