"""Who is in a team, with which role: every change is audited, made in the app or in the Django admin.

The team page calls add / change_role / remove; the admin saves its own forms and reports what they
changed through the same `record_*` functions, so both leave the same entries.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts.models import Membership, Team, User
from audit import log

ROLE_FIELDS = ("is_staff", "is_superuser", "is_active")  # what a user can do across the instance


@transaction.atomic
def add(actor: User, team: Team, user: User, role: str = Membership.Role.MEMBER) -> Membership:
    membership = Membership.objects.create(team=team, user=user, role=role)
    record_added(actor, membership)
    return membership


@transaction.atomic
def change_role(actor: User, membership: Membership, role: str) -> None:
    before = membership.role
    if before != role:
        membership.role = role
        membership.save(update_fields=["role"])
        record_role_changed(actor, membership, before)


@transaction.atomic
def remove(actor: User, membership: Membership) -> None:
    record_removed(actor, membership)
    membership.delete()


def record_added(actor: Any, membership: Membership) -> None:
    log.record(actor, "member_added", membership.team, team=membership.team, after=_state(membership))


def record_role_changed(actor: Any, membership: Membership, before_role: str) -> None:
    log.record(
        actor,
        "member_role_changed",
        membership.team,
        team=membership.team,
        before=_state(membership) | {"role": before_role},
        after=_state(membership),
    )


def record_removed(actor: Any, membership: Membership) -> None:
    log.record(actor, "member_removed", membership.team, team=membership.team, before=_state(membership))


def record_user_roles(actor: Any, user: User, before: dict[str, Any]) -> None:
    """Instance-wide roles (staff, superuser, active) changed on a user, if any did."""
    after = {name: getattr(user, name) for name in ROLE_FIELDS}
    if {name: before.get(name) for name in ROLE_FIELDS} != after:
        log.record(
            actor,
            "user_roles_changed",
            user,
            before={"user": user.get_username(), **before},
            after={"user": user.get_username(), **after},
        )


def _state(membership: Membership) -> dict[str, str]:
    return {"user": membership.user.get_username(), "team": membership.team.name, "role": membership.role}
