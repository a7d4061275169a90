from django.http import HttpRequest

from accounts.teams import current_team, teams_of
from usage import alerts


def team(request: HttpRequest) -> dict:
    """The current team and the user's role in it, for the navigation of every page."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    current = current_team(request)
    is_admin = current is not None and user.is_team_admin(current)
    return {
        "current_team": current,
        "user_teams": list(teams_of(user)),
        "is_team_admin": is_admin,
        "budget_alerts": [alerts.message(a) for a in alerts.current_for(current)] if is_admin else [],
        "usage_alerts": alerts.over_cap_for(current) if is_admin else [],
    }
