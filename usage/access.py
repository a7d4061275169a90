"""Which runs a person may see. The rule lives here only (the requests log, run pages, spend)."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Team, User
from usage.models import Run


def visible_runs(user: User, team: Team) -> QuerySet[Run]:
    """The team's runs `user` may see: all of them for the team's admins and instance staff, their
    own for members (API requests belong to no member: admins see those)."""
    runs = Run.objects.filter(team=team)
    if user.is_team_admin(team):
        return runs
    return runs.filter(user=user)
