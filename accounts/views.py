"""Signing up the first admin, switching teams, Settings → Team, invitations and passwords."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm, SetPasswordForm
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from accounts import membership
from accounts.forms import (
    FirstAdminForm,
    InviteForm,
    JoinForm,
    NewAccountForm,
    RoleForm,
    SwitchTeamForm,
    TeamForm,
    TeamSettingsForm,
)
from accounts.models import Invitation, Membership, Team, User
from accounts.teams import choose_team, require_admin, teams_of
from audit import log

# Shown on the next view of the team page only, then forgotten (as a new API key is).
SHOWN_ONCE = "accounts_shown_once"


@require_http_methods(["GET", "POST"])
def first_admin(request: HttpRequest) -> HttpResponse:
    """Create the first admin account and team: only while the instance has no user at all."""
    if User.objects.exists():
        return redirect("home")
    form = FirstAdminForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            data = form.cleaned_data
            user = User.objects.create_superuser(data["username"], data["email"], data["password1"])
            team = Team.objects.create(name=data["team"])
            Membership.objects.create(user=user, team=team, role=Membership.Role.ADMIN)
            user.current_team = team
            user.save(update_fields=["current_team"])
            log.record(
                user, "admin_created", user, team=team, after={"username": user.username, "team": team.name}
            )
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("providers:connect")
    return render(request, "accounts/first_admin.html", {"form": form})


@require_POST
@login_required
def switch_team(request: HttpRequest) -> HttpResponse:
    form = SwitchTeamForm(teams_of(request.user), request.POST)
    if form.is_valid():
        choose_team(request.user, form.cleaned_data["team"])
    return redirect("home")


@require_http_methods(["GET", "POST"])
@login_required
def team_settings(request: HttpRequest) -> HttpResponse:
    """What a team admin decides for the whole team: whether members see each other's runs, and how
    long the API responses it stored are kept."""
    team = require_admin(request)
    before = _team_settings(team)
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
                after=_team_settings(team),
            )
        messages.success(request, "Team settings saved.")
        return redirect("accounts:team-settings")
    return render(request, "accounts/team_settings.html", {"form": form, "team": team})


def _team_settings(team: Team) -> dict:
    return {
        "run_visibility": team.run_visibility,
        "stored_response_retention_days": team.stored_response_retention_days,
    }


# ---- Settings → Team


def _team_page(request: HttpRequest, team: Team, **forms) -> HttpResponse:
    members = Membership.objects.filter(team=team).select_related("user").order_by("user__username")
    context = {
        "team": team,
        "members": members,
        "admins": sum(1 for m in members if m.role == Membership.Role.ADMIN),
        "invitations": Invitation.objects.filter(team=team, accepted_at=None, revoked_at=None),
        "invite_form": forms.get("invite_form") or InviteForm(),
        "account_form": forms.get("account_form") or NewAccountForm(),
        "shown_once": request.session.pop(SHOWN_ONCE, None),
        "email_configured": membership.email_configured(),
        "roles": Membership.Role.choices,
        "now": timezone.now(),
        "invitation_days": settings.LLMHUB_INVITATION_DAYS,
    }
    return render(request, "accounts/team.html", context)


@require_http_methods(["GET"])
@login_required
def team_page(request: HttpRequest) -> HttpResponse:
    return _team_page(request, require_admin(request))


@require_POST
@login_required
def invite(request: HttpRequest) -> HttpResponse:
    team = require_admin(request)
    form = InviteForm(request.POST)
    if not form.is_valid():
        return _team_page(request, team, invite_form=form)
    created = membership.invite(
        team,
        form.cleaned_data["role"],
        form.cleaned_data["email"],
        request.user,
        link_for=lambda token: request.build_absolute_uri(reverse("accounts:join", args=[token])),
    )
    request.session[SHOWN_ONCE] = {
        "kind": "invitation",
        "link": request.build_absolute_uri(reverse("accounts:join", args=[created.token])),
        "email": created.invitation.email,
        "emailed": created.emailed,
    }
    return redirect("accounts:team")


@require_POST
@login_required
def new_account(request: HttpRequest) -> HttpResponse:
    team = require_admin(request)
    form = NewAccountForm(request.POST)
    if not form.is_valid():
        return _team_page(request, team, account_form=form)
    data = form.cleaned_data
    user, password = membership.create_account(
        team, data["username"], data["email"], data["role"], request.user
    )
    request.session[SHOWN_ONCE] = {"kind": "account", "username": user.username, "password": password}
    return redirect("accounts:team")


def _member_of_team(request: HttpRequest, membership_id: int) -> Membership:
    team = require_admin(request)
    return get_object_or_404(Membership.objects.select_related("user", "team"), pk=membership_id, team=team)


@require_POST
@login_required
def change_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    member = _member_of_team(request, membership_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Pick a role: team admin or member.")
        return redirect("accounts:team")
    try:
        membership.change_role(member, form.cleaned_data["role"], request.user)
    except membership.MembershipRefused as refused:
        messages.error(request, str(refused))
    else:
        label = Membership.Role(form.cleaned_data["role"]).label
        messages.success(request, f"{member.user.get_username()} is now {label.lower()}.")
    return redirect("accounts:team")


@require_POST
@login_required
def remove_member(request: HttpRequest, membership_id: int) -> HttpResponse:
    member = _member_of_team(request, membership_id)
    try:
        membership.remove(member, request.user)
    except membership.MembershipRefused as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, f"{member.user.get_username()} is no longer in {member.team.name}.")
    return redirect("accounts:team")


@require_POST
@login_required
def revoke_invitation(request: HttpRequest, invitation_id: int) -> HttpResponse:
    team = require_admin(request)
    invitation = get_object_or_404(Invitation, pk=invitation_id, team=team)
    membership.revoke_invitation(invitation, request.user)
    messages.success(request, "Invitation revoked: its link no longer works.")
    return redirect("accounts:team")


# ---- joining with an invitation link


@require_http_methods(["GET", "POST"])
def join(request: HttpRequest, token: str) -> HttpResponse:
    """An invitation link: a signed-in person joins with one button; anyone else makes an account."""
    invitation = membership.open_invitation(token)
    if invitation is None:
        return render(request, "accounts/join_invalid.html", status=410)
    signed_in = request.user.is_authenticated
    form = None if signed_in else JoinForm(request.POST or None, initial={"email": invitation.email})
    if request.method == "POST" and (signed_in or form.is_valid()):
        with transaction.atomic():
            if signed_in:
                user = request.user
            else:
                data = form.cleaned_data
                user = User.objects.create_user(data["username"], data["email"], data["password1"])
            try:
                membership.accept(invitation, user)
            except membership.MembershipRefused:
                transaction.set_rollback(True)
                return render(request, "accounts/join_invalid.html", status=410)
        if not signed_in:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome to {invitation.team.name}.")
        return redirect("home")
    return render(request, "accounts/join.html", {"invitation": invitation, "form": form})


@require_http_methods(["GET", "POST"])
@login_required
def password_change(request: HttpRequest) -> HttpResponse:
    """Change one's password; after a temporary one, choosing a new one comes before anything else."""
    user = request.user
    form_class = SetPasswordForm if user.must_change_password else PasswordChangeForm
    form = form_class(user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        form.save()
        update_session_auth_hash(request, user)
        membership.password_changed(user)
        messages.success(request, "Password changed.")
        return redirect("home")
    return render(
        request, "accounts/password_change.html", {"form": form, "required": user.must_change_password}
    )


# ---- Site admins: teams


@require_http_methods(["GET", "POST"])
@login_required
def teams(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise PermissionDenied
    form = TeamForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        team = membership.create_team(form.cleaned_data["name"], request.user)
        messages.success(request, f"Team {team.name} created. Invite its people from Settings → Team.")
        return redirect("accounts:teams")
    rows = Team.objects.annotate(people=Count("memberships")).order_by("name")
    return render(request, "accounts/teams.html", {"form": form, "teams": rows})


@require_POST
@login_required
def rename_team(request: HttpRequest, team_id: int) -> HttpResponse:
    if not request.user.is_staff:
        raise PermissionDenied
    team = get_object_or_404(Team, pk=team_id)
    form = TeamForm(request.POST, team=team)
    if form.is_valid():
        membership.rename_team(team, form.cleaned_data["name"], request.user)
        messages.success(request, f"Team renamed to {team.name}.")
    else:
        messages.error(request, " ".join(form.errors["name"]))
    return redirect("accounts:teams")
