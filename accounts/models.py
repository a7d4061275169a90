"""People and teams. A team admin manages the team's providers, models, budgets and fallback;
a member uses its models and sees its spend. Instance staff can do everything."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models


class Team(models.Model):
    class RunVisibility(models.TextChoices):
        """Whose runs (prompts and answers) a member sees; team admins see all of them."""

        OWN = "own", "Members see only their own runs"
        TEAM = "team", "Members see each other's runs from the browser (API requests: admins only)"
        ALL = "all", "Members see all the team's runs, API requests included"

    name = models.CharField(max_length=100, unique=True)
    default_model = models.CharField(max_length=300, blank=True, help_text='"provider/model"')
    run_visibility = models.CharField(max_length=8, choices=RunVisibility.choices, default=RunVisibility.OWN)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin", "Team admin"
        MEMBER = "member", "Member"

    user = models.ForeignKey("accounts.User", on_delete=models.CASCADE, related_name="memberships")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "team"], name="one_membership_per_team")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


class User(AbstractUser):
    def role_in(self, team: Team | None) -> str | None:
        if team is None:
            return None
        membership = self.memberships.filter(team=team).first()
        return membership.role if membership else None

    def is_team_admin(self, team: Team | None) -> bool:
        return self.is_staff or self.role_in(team) == Membership.Role.ADMIN

    def is_team_member(self, team: Team | None) -> bool:
        return self.is_staff or self.role_in(team) is not None
