from __future__ import annotations

from typing import Any

from django import forms


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
