"""Provider set-up forms, generated from an adapter's credential fields: no template per provider."""

from __future__ import annotations

from typing import Any

from django import forms

from providers.base import CredentialField
from providers.definitions import ProviderDefinition


class ProviderSetupForm(forms.Form):
    """Credentials, an optional endpoint and a name. With `editing`, empty secrets mean "unchanged"."""

    def __init__(
        self,
        kind: ProviderDefinition,
        fields: tuple[CredentialField, ...],
        *args: Any,
        editing: bool = False,
        masked: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.credential_fields = fields
        masked = masked or {}
        for field in fields:
            placeholder = field.placeholder
            if editing and field.secret and masked.get(field.name):
                placeholder = f"unchanged ({masked[field.name]})"
            attrs = {"placeholder": placeholder, "autocomplete": "off", "spellcheck": "false"}
            # A secret is never rendered back into the page, not even the one just typed.
            widget = (
                forms.PasswordInput(attrs=attrs, render_value=False)
                if field.secret
                else forms.TextInput(attrs)
            )
            self.fields[field.name] = forms.CharField(
                label=field.label,
                required=field.required and not editing,
                help_text=field.help_text,
                widget=widget,
                strip=True,
            )
        self.fields["endpoint"] = forms.URLField(
            label="Endpoint",
            required=False,
            assume_scheme="https",
            help_text=f"Leave empty for {kind.endpoint}. For proxies and compatible servers.",
            widget=forms.URLInput(attrs={"placeholder": kind.endpoint}),
        )
        self.fields["display_name"] = forms.CharField(
            label="Name",
            required=False,
            max_length=100,
            widget=forms.TextInput(attrs={"placeholder": kind.name}),
        )

    def credentials(self) -> dict[str, str]:
        return {f.name: self.cleaned_data.get(f.name, "") for f in self.credential_fields}

    def secret_fields(self) -> list[forms.BoundField]:
        return [self[f.name] for f in self.credential_fields if f.secret]

    def other_fields(self) -> list[forms.BoundField]:
        return [self[f.name] for f in self.credential_fields if not f.secret]


class DefaultModelForm(forms.Form):
    model = forms.ChoiceField(label="Which model for new automations?")

    def __init__(self, choices: list[tuple[str, str]], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = choices
