"""Role and membership changes are audited, made in the app or in the Django admin."""

from __future__ import annotations

import pytest

from accounts import members
from accounts.models import Membership
from audit.models import AuditEntry

pytestmark = pytest.mark.django_db


def entry(action: str) -> AuditEntry:
    return AuditEntry.objects.get(action=action)


def test_the_team_page_functions_audit_each_change(alice, bob, charlie, alpha):
    membership = members.add(alice, alpha, charlie, "member")
    members.change_role(alice, membership, "admin")
    members.remove(alice, membership)
    assert entry("member_added").after == {"user": "charlie", "team": "Alpha", "role": "member"}
    changed = entry("member_role_changed")
    assert (changed.before["role"], changed.after["role"], changed.actor_name) == ("member", "admin", "alice")
    assert entry("member_removed").before == {"user": "charlie", "team": "Alpha", "role": "admin"}
    assert all(e.team == alpha for e in AuditEntry.objects.filter(action__startswith="member_"))


def inline(membership: Membership, **changes) -> dict:
    data = {
        "name": membership.team.name,
        "default_model": "",
        "run_visibility": "own",
        "stored_response_retention_days": "30",
        "memberships-TOTAL_FORMS": "1",
        "memberships-INITIAL_FORMS": "1",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
        "memberships-0-id": str(membership.pk),
        "memberships-0-team": str(membership.team.pk),
        "memberships-0-user": str(membership.user.pk),
        "memberships-0-role": membership.role,
    }
    return data | changes


def test_the_django_admin_audits_role_changes_and_removals(admin_client, admin_user, bob, alpha):
    membership = bob.memberships.get()
    url = f"/admin/accounts/team/{alpha.pk}/change/"
    assert admin_client.post(url, inline(membership, **{"memberships-0-role": "admin"})).status_code == 302
    changed = entry("member_role_changed")
    assert (changed.actor_name, changed.before["role"], changed.after["role"]) == (
        admin_user.username,
        "member",
        "admin",
    )
    membership.refresh_from_db()
    assert admin_client.post(url, inline(membership, **{"memberships-0-DELETE": "on"})).status_code == 302
    assert entry("member_removed").before["user"] == "bob"
    assert not Membership.objects.filter(user=bob).exists()


def test_making_someone_staff_in_the_admin_is_audited(admin_client, bob):
    page = admin_client.get(f"/admin/accounts/user/{bob.pk}/change/")
    form = page.context["adminform"].form
    data = {
        name: value
        for name, value in form.initial.items()
        if value is not None and not isinstance(value, list)
    }
    data |= {
        "username": "bob",
        "is_staff": "on",
        "is_active": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
    }
    data.pop("last_login", None)
    data.pop("password", None)
    response = admin_client.post(f"/admin/accounts/user/{bob.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    roles = entry("user_roles_changed")
    assert (roles.before["is_staff"], roles.after["is_staff"]) == (False, True)
