from __future__ import annotations

import re
import string
from typing import Any

from django import forms

from automations.models import Automation

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class AutomationForm(forms.ModelForm):
    class Meta:
        model = Automation
        fields = ["name", "system_prompt", "prompt_template", "model", "max_tokens", "temperature"]
        widgets = {
            "system_prompt": forms.Textarea(attrs={"rows": 3}),
            "prompt_template": forms.Textarea(
                attrs={"rows": 6, "placeholder": "Summarize this for a busy reader:\n\n{text}"}
            ),
        }
        labels = {"prompt_template": "Prompt", "max_tokens": "Max output tokens"}

    def __init__(self, choices: list, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"] = forms.ChoiceField(
            choices=[("", "The team's default model"), *choices], required=False, label="Model"
        )

    def clean_prompt_template(self) -> str:
        template = self.cleaned_data["prompt_template"]
        try:
            fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
        except ValueError as error:
            raise forms.ValidationError(
                f"Braces do not match: {error}. Write {{{{ and }}}} for literal braces."
            ) from None
        for field in fields:
            if not _NAME.match(field):
                raise forms.ValidationError(f"“{{{field}}}” is not an input name: use letters, digits and _.")
        return template


class RunForm(forms.Form):
    """One text field per named input of the automation's prompt."""

    def __init__(self, names: list[str], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in names:
            self.fields[name] = forms.CharField(label=name.replace("_", " ").capitalize(),
                                                widget=forms.Textarea(attrs={"rows": 3}))  # fmt: skip


class AutomationSearchForm(forms.Form):
    q = forms.CharField(
        required=False,
        max_length=200,
        label="Search",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Name or prompt"}),
    )
    page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
