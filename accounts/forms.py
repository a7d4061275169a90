"""Account forms."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.password_validation import validate_password

from accounts.models import Team


class FirstAdminForm(forms.Form):
    username = forms.CharField(max_length=150, widget=forms.TextInput(attrs={"autocomplete": "username"}))
    email = forms.EmailField(required=False)
    team = forms.CharField(label="Team name", max_length=100, initial="My team")
    password1 = forms.CharField(
        label="Password", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    password2 = forms.CharField(
        label="Password again", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("password1") and data.get("password1") != data.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        elif data.get("password1"):
            try:
                validate_password(data["password1"])
            except forms.ValidationError as error:
                self.add_error("password1", error)
        return data


class TeamSettingsForm(forms.ModelForm):
    class Meta:
        model = Team
        fields = ["run_visibility"]
        widgets = {"run_visibility": forms.RadioSelect}
        labels = {"run_visibility": "Who sees the team's runs (prompts and answers)"}
