from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import MaxLengthValidator

from automations import prompts
from automations.models import Automation


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
        for name in ("system_prompt", "prompt_template"):
            self.fields[name].validators.append(MaxLengthValidator(prompts.MAX_TEMPLATE_CHARS))

    def clean_prompt_template(self) -> str:
        template = self.cleaned_data["prompt_template"]
        try:
            prompts.check(template)
        except prompts.TemplateError as error:
            raise forms.ValidationError(str(error)) from None
        return template


class RunForm(forms.Form):
    """One text field per named input of the automation's prompt."""

    def __init__(self, names: list[str], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in names:
            self.fields[name] = forms.CharField(
                label=name.replace("_", " ").capitalize(),
                max_length=prompts.MAX_INPUT_CHARS,
                widget=forms.Textarea(attrs={"rows": 3}),
            )


class AutomationSearchForm(forms.Form):
    q = forms.CharField(
        required=False,
        max_length=200,
        label="Search",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Name or prompt"}),
    )
    page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
