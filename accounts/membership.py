"""Running a team: invitations, accounts with a temporary password, roles, removal, and teams
themselves. Every change is audited; a team always keeps at least one admin."""

from __future__ import annotations

import hashlib
import logging
import secrets
import smtplib
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import get_random_string

from accounts.models import Invitation, Membership, Team, User
from audit import log

log_mail = logging.getLogger(__name__)

# Mail backends that deliver nothing anywhere a person would read it: e-mail is "not configured".
UNDELIVERED_BACKENDS = (
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
)
# Without look-alike characters (0/O, 1/l/I): the password is read off a screen and typed.
TEMPORARY_PASSWORD_CHARS = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class MembershipRefused(Exception):
    """A change that would break a rule (the last admin); the message says which."""


@dataclass(frozen=True)
class NewInvitation:
    invitation: Invitation
    token: str  # in the link only: shown once, never stored
    emailed: bool


def email_configured() -> bool:
    return settings.EMAIL_BACKEND not in UNDELIVERED_BACKENDS


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invite(team: Team, role: str, email: str, actor: User, link_for) -> NewInvitation:
    """A one-time link to join `team`, valid LLMHUB_INVITATION_DAYS days. `link_for(token)` makes
    the absolute URL; it is e-mailed when an address is given and e-mail is configured."""
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        invitation = Invitation.objects.create(
            team=team,
            role=role,
            email=email,
            digest=digest(token),
            created_by=actor,
            expires_at=timezone.now() + timedelta(days=settings.LLMHUB_INVITATION_DAYS),
        )
        log.record(
            actor,
            "member_invited",
            invitation,
            team=team,
            after={"email": email, "role": role, "expires_at": invitation.expires_at.isoformat()},
        )
    emailed = bool(email) and email_configured() and _send(invitation, token, actor, link_for)
    return NewInvitation(invitation, token, emailed)


def _send(invitation: Invitation, token: str, actor: User, link_for) -> bool:
    """E-mail the link; a mail server that fails leaves the link to be passed on by hand."""
    days, team = settings.LLMHUB_INVITATION_DAYS, invitation.team
    try:
        send_mail(
            f"Join {team.name} on LLMHub",
            f"{actor.get_username()} invites you to the team {team.name} on LLMHub.\n\n"
            f"Open this link within {days} days to join: {link_for(token)}\n\nThe link works once.",
            settings.DEFAULT_FROM_EMAIL,
            [invitation.email],
        )
    except (OSError, smtplib.SMTPException) as error:
        log_mail.warning("Invitation e-mail to %s not sent: %s", invitation.email, error)
        return False
    return True


def open_invitation(token: str) -> Invitation | None:
    """The invitation a link names, while it can still be used."""
    return (
        Invitation.objects.select_related("team")
        .filter(digest=digest(token), accepted_at=None, revoked_at=None, expires_at__gt=timezone.now())
        .first()
    )


def accept(invitation: Invitation, user: User) -> Membership:
    """Join the invitation's team. The link is used up in the same transaction, exactly once."""
    with transaction.atomic():
        claimed = Invitation.objects.filter(
            pk=invitation.pk, accepted_at=None, revoked_at=None, expires_at__gt=timezone.now()
        ).update(accepted_at=timezone.now(), accepted_by=user)
        if not claimed:
            raise MembershipRefused("This invitation has been used or has expired. Ask for a new one.")
        membership, created = Membership.objects.get_or_create(
            user=user, team=invitation.team, defaults={"role": invitation.role}
        )
        if not created and invitation.role == Membership.Role.ADMIN and membership.role != invitation.role:
            membership.role = invitation.role
            membership.save(update_fields=["role"])
        log.record(
            user,
            "invitation_accepted",
            user,
            team=invitation.team,
            after={"user": user.get_username(), "role": membership.role},
        )
    user.current_team = invitation.team
    user.save(update_fields=["current_team"])
    return membership


def create_account(team: Team, username: str, email: str, role: str, actor: User) -> tuple[User, str]:
    """A new account in the team with a temporary password, to be changed at first sign-in."""
    password = get_random_string(16, TEMPORARY_PASSWORD_CHARS)
    with transaction.atomic():
        user = User.objects.create_user(
            username, email, password, must_change_password=True, current_team=team
        )
        Membership.objects.create(user=user, team=team, role=role)
        log.record(
            actor,
            "account_created",
            user,
            team=team,
            after={
                "user": username,
                "email": email,
                "role": role,
                "sign_in": "temporary password, to be changed",
            },
        )
    return user, password


def change_role(membership: Membership, role: str, actor: User) -> None:
    with transaction.atomic():
        membership = _locked(membership)
        if membership.role == role:
            return
        if membership.role == Membership.Role.ADMIN:
            _keep_an_admin(membership, "Make someone else an admin first: a team needs at least one.")
        before, membership.role = membership.role, role
        membership.save(update_fields=["role"])
        log.record(
            actor,
            "role_changed",
            membership.user,
            team=membership.team,
            before={"user": membership.user.get_username(), "role": before},
            after={"user": membership.user.get_username(), "role": role},
        )


def remove(membership: Membership, actor: User) -> None:
    with transaction.atomic():
        membership = _locked(membership)
        if membership.role == Membership.Role.ADMIN:
            _keep_an_admin(membership, "This is the team's last admin: make someone else an admin first.")
        user, team = membership.user, membership.team
        membership.delete()
        log.record(
            actor,
            "member_removed",
            user,
            team=team,
            before={"user": user.get_username(), "role": membership.role},
        )
        if user.current_team_id == team.pk:
            user.current_team = None
            user.save(update_fields=["current_team"])


def _locked(membership: Membership) -> Membership:
    # Two admins demoting each other at once must not leave the team with none: the team's admin
    # rows are locked (PostgreSQL; SQLite's write lock is taken at BEGIN IMMEDIATE).
    admins = Membership.objects.select_for_update().filter(
        team_id=membership.team_id, role=Membership.Role.ADMIN
    )
    list(admins.order_by("pk").values_list("pk", flat=True))
    return Membership.objects.select_related("user", "team").get(pk=membership.pk)


def _keep_an_admin(membership: Membership, message: str) -> None:
    others = Membership.objects.filter(team_id=membership.team_id, role=Membership.Role.ADMIN)
    if not others.exclude(pk=membership.pk).exists():
        raise MembershipRefused(message)


def revoke_invitation(invitation: Invitation, actor: User) -> None:
    with transaction.atomic():
        if Invitation.objects.filter(pk=invitation.pk, accepted_at=None, revoked_at=None).update(
            revoked_at=timezone.now()
        ):
            log.record(
                actor,
                "invitation_revoked",
                invitation,
                team=invitation.team,
                before={"email": invitation.email, "role": invitation.role},
            )


def create_team(name: str, actor: User) -> Team:
    with transaction.atomic():
        team = Team.objects.create(name=name)
        log.record(actor, "team_created", team, team=team, after={"name": name})
    return team


def rename_team(team: Team, name: str, actor: User) -> None:
    before = team.name
    if before == name:
        return
    with transaction.atomic():
        team.name = name
        team.save(update_fields=["name"])
        log.record(actor, "team_renamed", team, team=team, before={"name": before}, after={"name": name})


def password_changed(user: User) -> None:
    with transaction.atomic():
        user.must_change_password = False
        user.save(update_fields=["must_change_password"])
        log.record(user, "password_changed", user, team=user.current_team)
