from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.forms import FirstAdminForm, TeamSettingsForm
from accounts.models import Membership, Team, User
from accounts.teams import SESSION_KEY, require_admin, teams_of
from audit import log


@require_http_methods(["GET", "POST"])
def first_admin(request: HttpRequest) -> HttpResponse:
    """Create the first admin account and team: only while the instance has no user at all."""
    if User.objects.exists():
        return redirect("home")
    form = FirstAdminForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            user = User.objects.create_superuser(
                form.cleaned_data["username"], form.cleaned_data["email"], form.cleaned_data["password1"]
            )
            team = Team.objects.create(name=form.cleaned_data["team"])
            Membership.objects.create(user=user, team=team, role=Membership.Role.ADMIN)
            log.record(
                user, "admin_created", user, team=team, after={"username": user.username, "team": team.name}
            )
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("providers:connect")
    return render(request, "accounts/first_admin.html", {"form": form})


@require_POST
def switch_team(request: HttpRequest) -> HttpResponse:
    team = (
        teams_of(request.user).filter(pk=request.POST.get("team")).first()
        if request.user.is_authenticated
        else None
    )
    if team:
        request.session[SESSION_KEY] = team.pk
    return redirect("home")


@require_http_methods(["GET", "POST"])
@login_required
def team_settings(request: HttpRequest) -> HttpResponse:
    """What a team admin decides for the whole team: whether members see each other's runs."""
    team = require_admin(request)
    before = {"run_visibility": team.run_visibility}
    form = TeamSettingsForm(request.POST or None, instance=team)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            form.save()
            log.record(
                request.user,
                "team_settings_changed",
                team,
                team=team,
                before=before,
                after={"run_visibility": team.run_visibility},
            )
        messages.success(request, "Team settings saved.")
        return redirect("accounts:team-settings")
    return render(request, "accounts/team_settings.html", {"form": form, "team": team})
