"""Who sees a run and who controls it: the one rule for the run page, its websocket, the spend
page's recent runs and the requests log.

Team admins (and staff) see and control every run of the team. A member controls (starts, cancels,
answers) only their own runs, and sees the team's others as the team's `run_visibility` says: by
default none, since a run holds its prompt and answer. Requests made with an API key belong to no
member: admins see them, members only when the team shows them everything.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from accounts.models import Team, User
from usage.models import Run


def visible_runs(user: User, team: Team | None) -> QuerySet[Run]:
    """The team's runs this user may see (prompts and answers included)."""
    if team is None or not user.is_authenticated or not user.is_team_member(team):
        return Run.objects.none()
    runs = Run.objects.filter(team=team)
    if user.is_team_admin(team) or team.run_visibility == Team.RunVisibility.ALL:
        return runs
    if team.run_visibility == Team.RunVisibility.TEAM:
        return runs.filter(Q(user=user) | Q(api_key__isnull=True))
    return runs.filter(user=user)


def can_see(user: User, run: Run) -> bool:
    return visible_runs(user, run.team).filter(pk=run.pk).exists()


def can_control(user: User, run: Run) -> bool:
    """Whether the user may start or cancel the run (or answer its fallback question)."""
    if not user.is_authenticated:
        return False
    return user.is_team_admin(run.team) or (run.user_id == user.pk and user.is_team_member(run.team))
