"""Alerts to a team's admins, each as a banner, an email and an audit entry: a budget that crossed
its threshold in a period (once per period), and a provider that reported more usage than a run
reserved (once per run; the run was charged at its cap)."""

from __future__ import annotations

from datetime import datetime, time

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import Membership, Team, User
from audit import log
from providers.pricing import format_usd
from usage import budgets
from usage.models import BudgetAlert, Run


def check(team: Team, provider_id: str, api_key_id: int | None = None) -> list[BudgetAlert]:
    """Raise the alerts the latest spend crossed; each budget and period alerts at most once."""
    raised = []
    for budget in budgets.matching(team, provider_id, api_key_id):
        for standing in budgets.standings(budget, with_reserved=False):
            if standing.spent < standing.limit * budget.alert_threshold:
                continue
            start, _ = budgets.period(standing.period)
            try:
                with transaction.atomic():
                    alert = BudgetAlert.objects.create(budget=budget, period=standing.period, period_start=start,
                                                       spent_usd=standing.spent, limit_usd=standing.limit)  # fmt: skip
            except IntegrityError:
                continue  # already raised this period
            raised.append(alert)
            _announce(alert)
    return raised


def message(alert: BudgetAlert) -> str:
    share = round(alert.spent_usd / alert.limit_usd * 100)
    period = "today" if alert.period == "day" else "this month"
    return (f"The {budgets.label(alert.budget)} budget is at {share} %: {format_usd(alert.spent_usd)} of "
            f"{format_usd(alert.limit_usd)} spent {period}.")  # fmt: skip


def _announce(alert: BudgetAlert) -> None:
    text = message(alert)
    log.record("system", "budget_alert", alert.budget, team=alert.budget.team,
               after={"period": alert.period, "spent": str(alert.spent_usd), "limit": str(alert.limit_usd)})  # fmt: skip
    recipients = [user.email for user in admins_of(alert.budget.team) if user.email]
    if recipients:
        transaction.on_commit(lambda: send_mail(f"LLMHub: {text}", text + "\n\nSee the spend page for details.",
                                                settings.DEFAULT_FROM_EMAIL, recipients))  # fmt: skip


def admins_of(team: Team | None) -> QuerySet[User]:
    """The people an alert concerns: the team's admins, or instance staff for instance-wide budgets."""
    if team is None:
        return User.objects.filter(is_staff=True, is_active=True)
    return User.objects.filter(
        is_active=True, memberships__team=team, memberships__role=Membership.Role.ADMIN
    )


def current_for(team: Team) -> QuerySet[BudgetAlert]:
    """This period's alerts a team admin sees as banners."""
    month_start, _ = budgets.period("month")
    today = timezone.localdate()
    return BudgetAlert.objects.select_related("budget__team", "budget__provider").filter(
        Q(budget__team=team) | Q(budget__team__isnull=True),
        Q(period="month", period_start=month_start) | Q(period="day", period_start=today),
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
