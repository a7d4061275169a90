"""Alerts to a team's admins. Budget alerts: once spend crosses a budget's threshold in a period,
the people the budget concerns hear of it once (an e-mail, an audit entry); the banner on every
page is computed from the current budgets and spend, so it follows a changed or removed limit at
once, and a person can close it until the period ends. Usage alerts: a provider that reported more
usage than a run reserved (once per run; the run was charged at its cap).

Who a budget concerns: a team's budgets (its own, on its providers, on its API keys) its admins;
an instance-wide budget (a shared provider's) the instance staff only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import Membership, Team, User
from audit import log
from providers.pricing import format_usd
from usage import budgets
from usage.models import Budget, BudgetAlert, BudgetAlertDismissal, Run


@dataclass(frozen=True)
class Banner:
    budget_id: int
    period: str  # "day" or "month"
    period_start: date
    text: str


def check(team: Team, provider_id: str, api_key_id: int | None = None) -> list[BudgetAlert]:
    """Raise the alerts the latest spend crossed; each budget and period alerts at most once."""
    raised = []
    for budget in budgets.definitions(team, provider_id, api_key_id):
        for standing in budgets.standings(budget, with_reserved=False):
            if not _crossed(standing.spent, standing.limit, budget.alert_threshold):
                continue
            start, _ = budgets.period(standing.period)
            try:
                with transaction.atomic():
                    alert = BudgetAlert.objects.create(
                        budget=budget,
                        period=standing.period,
                        period_start=start,
                        spent_usd=standing.spent,
                        limit_usd=standing.limit,
                    )
            except IntegrityError:
                continue  # already raised this period
            raised.append(alert)
            _announce(alert)
    return raised


def _crossed(spent: Decimal, limit: Decimal, threshold: Decimal) -> bool:
    return spent > 0 and spent >= limit * threshold


def message(budget: Budget, period: str, spent: Decimal, limit: Decimal) -> str:
    when = "today" if period == "day" else "this month"
    if not limit:
        return f"The {budgets.label(budget)} budget allows nothing {when}, and {format_usd(spent)} is spent."
    share = round(spent / limit * 100)
    return (
        f"The {budgets.label(budget)} budget is at {share} %: {format_usd(spent)} of "
        f"{format_usd(limit)} spent {when}."
    )


def _announce(alert: BudgetAlert) -> None:
    text = message(alert.budget, alert.period, alert.spent_usd, alert.limit_usd)
    log.record(
        "system",
        "budget_alert",
        alert.budget,
        team=alert.budget.team,
        after={"period": alert.period, "spent_usd": str(alert.spent_usd), "limit_usd": str(alert.limit_usd)},
    )
    recipients = [user.email for user in admins_of(alert.budget.team) if user.email]
    if recipients:
        transaction.on_commit(
            lambda: send_mail(
                f"LLMHub: {text}",
                text + "\n\nSee the spend page for details.",
                settings.DEFAULT_FROM_EMAIL,
                recipients,
            )
        )


def admins_of(team: Team | None) -> QuerySet[User]:
    """The people an alert concerns: the team's admins, or instance staff for instance-wide budgets."""
    if team is None:
        return User.objects.filter(is_staff=True, is_active=True)
    return User.objects.filter(
        is_active=True, memberships__team=team, memberships__role=Membership.Role.ADMIN
    )


def usage_over_cap(run: Run) -> None:
    """The provider reported more than the run reserved, and the run was charged at its cap: the
    provider's bill may differ from the hub's. Audited, and mailed to the team's admins."""
    after = {"model": run.model_used, "warning": run.usage_warning, "charged": str(run.cost_usd)}
    log.record("system", "usage_over_cap", run, team=run.team, after=after)
    recipients = [user.email for user in admins_of(run.team) if user.email]
    if recipients:
        body = f"{run.usage_warning}\n\nRun {run.uuid} ({run.model_used})."
        subject = f"LLMHub: usage above the cap on {run.model_used}"
        transaction.on_commit(lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients))


def over_cap_for(team: Team) -> list[Run]:
    """This month's runs of the team whose provider reported usage above the cap, newest first."""
    month_start, _ = budgets.period("month")
    since = timezone.make_aware(datetime.combine(month_start, time()))
    return list(
        Run.objects.filter(team=team, finished_at__gte=since)
        .exclude(usage_warning="")
        .order_by("-finished_at")[:3]
    )


def visible_budgets(user: User, team: Team | None) -> QuerySet[Budget]:
    """The budgets whose banners `user` sees while working in `team`."""
    scope = Q(team=team) if team is not None else Q(pk__in=[])
    if user.is_staff:
        scope |= Q(team__isnull=True)
    limited = Q(daily_limit_usd__isnull=False) | Q(monthly_limit_usd__isnull=False)
    return Budget.objects.select_related("team", "provider", "api_key").filter(scope & limited)


def banners(user: User, team: Team | None) -> list[Banner]:
    """Budgets at or past their alert threshold right now, less those the user closed this period.
    Queries: the team's budgets, the user's dismissals, one sum per budget (never other teams')."""
    found = []
    dismissed: set[tuple[int, str, date]] | None = None
    for budget in visible_budgets(user, team):
        for standing in budgets.standings(budget, with_reserved=False):
            if not _crossed(standing.spent, standing.limit, budget.alert_threshold):
                continue
            if dismissed is None:
                month_start, _ = budgets.period("month")
                mine = BudgetAlertDismissal.objects.filter(user=user, period_start__gte=month_start)
                dismissed = set(mine.values_list("budget_id", "period", "period_start"))
            start, _ = budgets.period(standing.period)
            if (budget.pk, standing.period, start) in dismissed:
                continue
            text = message(budget, standing.period, standing.spent, standing.limit)
            found.append(Banner(budget.pk, standing.period, start, text))
    return found


def dismiss(user: User, team: Team | None, budget_id: int, period: str) -> bool:
    """Close a banner until its period ends. False when the user does not see that budget."""
    budget = visible_budgets(user, team).filter(pk=budget_id).first()
    if budget is None or period not in ("day", "month"):
        return False
    start, _ = budgets.period(period)
    BudgetAlertDismissal.objects.get_or_create(user=user, budget=budget, period=period, period_start=start)
    return True
