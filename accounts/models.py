"""People and teams. A team admin manages the team's providers, models, budgets and fallback;
a member uses its models and sees its spend. Instance staff can do everything."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.core.validators import MaxValueValidator, MinValueValidator
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
    # Limits over all the team's API keys together; empty: none (gateway/ratelimits.py).
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_minute = models.PositiveBigIntegerField(null=True, blank=True)
    # Responses API answers stored with `store: true` are deleted this many days after they were made.
    stored_response_retention_days = models.PositiveSmallIntegerField(
        "Keep stored API responses for (days)",
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text="Answers a program asked the hub to store (Responses API, store: true) are deleted after this many days.",
    )
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
    # The team the app shows, chosen by the user: a team created later never takes its place.
    current_team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Set for an account made with a temporary password: every page leads to choosing a new one.
    must_change_password = models.BooleanField(default=False)

    def role_in(self, team: Team | None) -> str | None:
        if team is None:
            return None
        cache = self.__dict__.setdefault("_roles", {})
        if team.pk not in cache:
            membership = self.memberships.filter(team=team).first()
            cache[team.pk] = membership.role if membership else None
        return cache[team.pk]

    def is_team_admin(self, team: Team | None) -> bool:
        return self.is_staff or self.role_in(team) == Membership.Role.ADMIN

    def is_team_member(self, team: Team | None) -> bool:
        return self.is_staff or self.role_in(team) is not None


class Invitation(models.Model):
    """A one-time link that adds whoever opens it to a team. Only the SHA-256 of its token is
    stored; the link is shown once (and e-mailed where e-mail is configured)."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invitations")
    role = models.CharField(max_length=8, choices=Membership.Role.choices, default=Membership.Role.MEMBER)
    email = models.EmailField(blank=True)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Invitation to {self.team} as {self.get_role_display()}" + (
            f" for {self.email}" if self.email else ""
        )
