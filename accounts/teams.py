"""Which team a request acts for, and what its people may do."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from accounts.models import Team, User
from providers.catalog_entries import CatalogEntry
from providers.models import Provider
from providers.team_catalog import for_team


def teams_of(user: User) -> QuerySet[Team]:
    return Team.objects.all() if user.is_staff else Team.objects.filter(memberships__user=user)


def current_team(request: HttpRequest) -> Team | None:
    """The team the user chose last (remembered on the user, on every device), while they may
    still use it; else the first team they joined. Computed once per request."""
    if not hasattr(request, "_current_team"):
        request._current_team = _choose_team(request.user) if request.user.is_authenticated else None
    return request._current_team


def _choose_team(user: User) -> Team | None:
    if user.current_team_id:
        chosen = teams_of(user).filter(pk=user.current_team_id).first()
        if chosen is not None:
            return chosen
    # Join order, not name order: a team created later never takes over anyone's view.
    joined = Team.objects.filter(memberships__user=user).order_by("memberships__pk").first()
    if joined is not None or not user.is_staff:
        return joined
    return Team.objects.order_by("pk").first()


def choose_team(user: User, team: Team) -> None:
    """Remember the team a user switched to."""
    user.current_team = team
    user.save(update_fields=["current_team"])


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
    return for_team(team).default


def model_choices(
    team: Team, with_features: bool = False, embeddings: bool = False
) -> list[tuple[str, list[tuple[str, str]]]]:
    """The team's enabled models grouped by provider, for a model <select>; `with_features` adds
    what each accepts besides text to its name; `embeddings` keeps the embedding models too."""
    return for_team(team).choices(with_features, embeddings)
