"""Account and team forms."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.password_validation import validate_password

from accounts.models import Membership, Team, User

ROLE_CHOICES = Membership.Role.choices


class NewPasswordMixin:
    """Two password fields that must match and pass the configured validators."""

    def check_passwords(self, data: dict[str, Any], user: User | None = None) -> None:
        if data.get("password1") and data.get("password1") != data.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        elif data.get("password1"):
            try:
                validate_password(data["password1"], user)
            except forms.ValidationError as error:
                self.add_error("password1", error)


def _password_field(label: str) -> forms.CharField:
    return forms.CharField(label=label, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))


class FirstAdminForm(NewPasswordMixin, forms.Form):
    username = forms.CharField(max_length=150, widget=forms.TextInput(attrs={"autocomplete": "username"}))
    email = forms.EmailField(required=False)
    team = forms.CharField(label="Team name", max_length=100, initial="My team")
    password1 = _password_field("Password")
    password2 = _password_field("Password again")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        self.check_passwords(data)
        return data


class TeamSettingsForm(forms.ModelForm):
    class Meta:
        model = Team
        fields = ["run_visibility", "stored_response_retention_days"]
        widgets = {"run_visibility": forms.RadioSelect}
        labels = {"run_visibility": "Who sees the team's runs (prompts and answers)"}


class UsernameMixin:
    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("That username is taken; pick another.")
        return username


class JoinForm(UsernameMixin, NewPasswordMixin, forms.Form):
    """Opening an invitation without an account: make one."""

    username = forms.CharField(max_length=150, widget=forms.TextInput(attrs={"autocomplete": "username"}))
    email = forms.EmailField(required=False)
    password1 = _password_field("Password")
    password2 = _password_field("Password again")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        self.check_passwords(data, User(username=data.get("username", ""), email=data.get("email", "")))
        return data


class InviteForm(forms.Form):
    email = forms.EmailField(
        required=False, help_text="Optional. Where e-mail is set up, the link is sent there too."
    )
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial=Membership.Role.MEMBER)


class NewAccountForm(UsernameMixin, forms.Form):
    username = forms.CharField(max_length=150, validators=[User.username_validator])
    email = forms.EmailField(required=False)
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial=Membership.Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES)


class TeamForm(forms.Form):
    name = forms.CharField(label="Team name", max_length=100)

    def __init__(self, *args: Any, team: Team | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.team = team

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        taken = Team.objects.filter(name__iexact=name)
        if self.team is not None:
            taken = taken.exclude(pk=self.team.pk)
        if taken.exists():
            raise forms.ValidationError("A team of that name exists already.")
        return name


class SwitchTeamForm(forms.Form):
    team = forms.ModelChoiceField(queryset=Team.objects.none())

    def __init__(self, teams, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams
