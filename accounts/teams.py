"""Which team a request acts for, and what its people may do."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from accounts.models import Team, User
from providers.models import Provider
from providers.registry import CatalogEntry, registry

SESSION_KEY = "team_id"


def teams_of(user: User) -> QuerySet[Team]:
    return Team.objects.all() if user.is_staff else Team.objects.filter(memberships__user=user)


def current_team(request: HttpRequest) -> Team | None:
    """The team chosen in this session, else the user's first team."""
    teams = teams_of(request.user)
    chosen = request.session.get(SESSION_KEY)
    team = teams.filter(pk=chosen).first() if chosen else None
    return team or teams.first()


def require_admin(request: HttpRequest) -> Team:
    """The current team, when the user is its admin (or staff); 403 otherwise."""
    team = current_team(request)
    if team is None or not request.user.is_team_admin(team):
        raise PermissionDenied
    return team


def require_member(request: HttpRequest) -> Team:
    team = current_team(request)
    if team is None or not request.user.is_team_member(team):
        raise PermissionDenied
    return team


def providers_for(team: Team) -> QuerySet[Provider]:
    """The team's own providers and the instance's shared ones."""
    return Provider.objects.filter(Q(team=team) | Q(team__isnull=True))


def can_manage(user: User, provider: Provider) -> bool:
    if user.is_staff:
        return True
    return provider.team is not None and user.is_team_admin(provider.team)


def default_model_for(team: Team) -> CatalogEntry | None:
    """The team's model for new automations: its choice while that model is available,
    else the first enabled provider's default."""
    entries = [e for e in registry.list_models(enabled_only=True) if e.provider_id in _provider_ids(team)]
    chosen = next((e for e in entries if e.ref == team.default_model), None)
    if chosen:
        return chosen
    for provider in providers_for(team).filter(enabled=True).order_by("created_at"):
        found = next((e for e in entries if e.provider_id == provider.id and e.is_default), None)
        if found:
            return found
    return None


def _provider_ids(team: Team) -> set[str]:
    return set(providers_for(team).values_list("id", flat=True))


def model_choices(team: Team, with_features: bool = False) -> list[tuple[str, list[tuple[str, str]]]]:
    """The team's enabled models grouped by provider, for a model <select>; `with_features` adds
    what each accepts besides text to its name ("GPT-4o mini · tools, JSON schema, images")."""
    groups: dict[str, list[tuple[str, str]]] = {}
    ids = _provider_ids(team)
    for entry in registry.list_models(enabled_only=True):
        if entry.provider_id in ids:
            label = entry.info.display_name
            if with_features and entry.info.features:
                label += f" · {entry.info.features}"
            groups.setdefault(entry.provider_name, []).append((entry.ref, label))
    return list(groups.items())
