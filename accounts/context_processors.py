from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest
from django.urls import reverse

from accounts.teams import current_team, teams_of
from usage import alerts


@dataclass(frozen=True)
class NavItem:
    label: str
    url: str
    current: bool


# (group, [(label, url name, pages that count as it ("namespace:" for a whole app), admins only)])
NAVIGATION = [
    (
        "Use",
        [
            ("Playground", "usage:playground", ("usage:playground",), False),
            ("Automations", "automations:list", ("automations:", "usage:automation-fallback"), False),
            ("Runs", "usage:runs", ("usage:runs", "usage:run", "usage:run-detail", "usage:retry"), False),
        ],
    ),
    (
        "Manage",
        [
            ("Providers", "providers:settings", ("providers:",), True),
            (
                "Budgets",
                "usage:budgets",
                ("usage:budgets", "usage:team-budget", "usage:provider-budget", "usage:key-budget"),
                True,
            ),
            ("Fallback", "usage:team-fallback", ("usage:team-fallback",), True),
            ("API keys", "gateway:keys", ("gateway:",), True),
            ("Team", "accounts:team", ("accounts:team", "accounts:teams"), True),
        ],
    ),
    (
        "Insights",
        [
            ("Spend", "usage:spend", ("usage:spend",), False),
            ("Audit", "audit:log", ("audit:",), True),
        ],
    ),
]


def navigation(request: HttpRequest, is_admin: bool) -> list[tuple[str, list[NavItem]]]:
    """The grouped navigation, the current page's item marked (aria-current in the template)."""
    match = getattr(request, "resolver_match", None)
    here = f"{match.namespace}:{match.url_name}" if match else ""
    groups = []
    for group, items in NAVIGATION:
        shown = [
            NavItem(
                label,
                reverse(name),
                any(here == p or (p.endswith(":") and here.startswith(p)) for p in pages),
            )
            for label, name, pages, admins_only in items
            if is_admin or not admins_only
        ]
        if shown:
            groups.append((group, shown))
    return groups


def team(request: HttpRequest) -> dict:
    """The current team, the user's role in it and the navigation, for every page."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    current = current_team(request)
    is_admin = current is not None and user.is_team_admin(current)
    return {
        "current_team": current,
        "user_teams": list(teams_of(user)),
        "is_team_admin": is_admin,
        "navigation": navigation(request, is_admin),
        "budget_alerts": alerts.banners(user, current) if is_admin else [],
        "usage_alerts": alerts.over_cap_for(current) if is_admin else [],
    }
