"""Settings → Team: invitations, accounts with a temporary password, roles, removal, teams."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts.models import Invitation, Membership, Team, User
from audit.models import AuditEntry
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db
LINK = re.compile(r"http://testserver/invite/([\w-]+)/")
NEW_PASSWORD = "a brand new passphrase 42"


def invite(client: Client, email: str = "", role: str = "member") -> str:
    return invitation_page(client, email, role)[0]


def invitation_page(client: Client, email: str = "", role: str = "member") -> tuple[str, str]:
    """The link, and the page that shows it (once)."""
    response = client.post("/settings/team/invite/", {"email": email, "role": role})
    assert response.status_code == 302
    page = client.get("/settings/team/").content.decode()
    return LINK.search(page).group(0), page


def join(link: str, username: str = "dora") -> Client:
    visitor = Client()
    response = visitor.post(
        link, {"username": username, "email": "", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )
    assert response.status_code == 302, response.content.decode()
    return visitor


def test_an_invited_person_makes_an_account_and_joins_the_team(alice_client, alpha):
    link, page = invitation_page(alice_client, "dora@example.com")
    assert "It works once and was e-mailed to dora@example.com." in page
    [message] = mail.outbox
    assert link in message.body and message.to == ["dora@example.com"] and "Alpha" in message.subject
    visitor = Client()
    page = visitor.get(link).content.decode()
    assert "Join Alpha" in page and "You are invited as <strong>member</strong> by alice" in page
    join(link)
    dora = User.objects.get(username="dora")
    assert Membership.objects.get(user=dora).team == alpha and dora.current_team == alpha
    assert list(AuditEntry.objects.filter(team=alpha).values_list("action", flat=True).order_by("pk")) == [
        "member_invited",
        "invitation_accepted",
    ]
    assert Invitation.objects.get().digest not in link  # only the hash is stored, never the token


def test_the_link_is_shown_once_and_works_once(alice_client, alpha):
    link = invite(alice_client)
    assert not LINK.search(alice_client.get("/settings/team/").content.decode())  # shown once
    join(link, "dora")
    again = Client().post(link, {"username": "eve", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert again.status_code == 410
    assert not User.objects.filter(username="eve").exists()


def test_expired_and_revoked_links_are_refused(alice_client, alpha):
    expired = invite(alice_client)
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert Client().get(expired).status_code == 410
    revoked = invite(alice_client)
    fresh = Invitation.objects.get(expires_at__gt=timezone.now())
    alice_client.post(f"/settings/team/invitations/{fresh.pk}/revoke/")
    assert Client().get(revoked).status_code == 410
    assert AuditEntry.objects.filter(action="invitation_revoked").count() == 1


def test_a_signed_in_person_joins_with_one_button(alice_client, alpha, charlie_client, charlie):
    link = invite(alice_client, role="admin")
    assert "Join Alpha" in charlie_client.get(link).content.decode()
    charlie_client.post(link)
    assert Membership.objects.get(user=charlie, team=alpha).role == "admin"


def test_without_email_set_up_the_link_is_only_shown(alice_client, alpha, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    _, page = invitation_page(alice_client, "dora@example.com")
    assert not mail.outbox
    assert "e-mail is not set up here, so send it to dora@example.com yourself" in page


def test_an_account_with_a_temporary_password_chooses_its_own_first(alice_client, alpha):
    alice_client.post("/settings/team/accounts/", {"username": "dora", "email": "", "role": "member"})
    page = alice_client.get("/settings/team/").content.decode()
    temporary = re.search(r"Temporary password: <code class=\"secret-once\">([^<]+)</code>", page).group(1)
    assert temporary not in alice_client.get("/settings/team/").content.decode()  # shown once
    dora = Client()
    signed_in = dora.post("/accounts/login/", {"username": "dora", "password": temporary})
    assert signed_in.status_code == 302  # the sign-in form takes the temporary password
    assert dora.get("/playground/").url == "/accounts/password/"  # every page leads to the form
    assert dora.get("/spend/").url == "/accounts/password/"
    response = dora.post(
        "/accounts/password/", {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )
    assert response.url == "/"
    assert dora.get("/playground/").status_code == 200
    assert not User.objects.get(username="dora").must_change_password
    actions = list(
        AuditEntry.objects.exclude(action="signed_in").values_list("action", flat=True).order_by("pk")
    )
    assert actions == ["account_created", "password_changed"]
    assert temporary not in str(list(AuditEntry.objects.values_list("after", flat=True)))


def test_an_admin_changes_a_role_and_it_is_audited(alice_client, alpha, bob):
    membership = Membership.objects.get(user=bob)
    alice_client.post(f"/settings/team/members/{membership.pk}/role/", {"role": "admin"})
    assert Membership.objects.get(user=bob).role == "admin"
    entry = AuditEntry.objects.get(action="role_changed")
    assert (entry.before["role"], entry.after["role"], entry.object_type) == ("member", "admin", "user")


def test_a_team_keeps_its_last_admin(alice_client, alice, alpha, bob):
    own = Membership.objects.get(user=alice)
    alice_client.post(f"/settings/team/members/{own.pk}/role/", {"role": "member"})
    alice_client.post(f"/settings/team/members/{own.pk}/remove/")
    assert Membership.objects.get(user=alice).role == "admin"
    page = alice_client.get("/settings/team/").content.decode()
    assert "last admin" in page
    response = alice_client.post(f"/settings/team/members/{own.pk}/remove/", follow=True)
    assert "This is the team&#x27;s last admin" in response.content.decode()


def test_a_removed_member_loses_the_team_at_once(alice_client, alpha, bob, bob_client):
    assert bob_client.get("/runs/").status_code == 200
    alice_client.post(f"/settings/team/members/{Membership.objects.get(user=bob).pk}/remove/")
    assert not Membership.objects.filter(user=bob).exists()
    assert bob_client.get("/runs/").status_code == 403
    assert AuditEntry.objects.get(action="member_removed").before == {"user": "bob", "role": "member"}


TEAM_URLS = [
    ("get", "/settings/team/"),
    ("post", "/settings/team/invite/"),
    ("post", "/settings/team/accounts/"),
]


@pytest.mark.parametrize(("method", "url"), TEAM_URLS)
def test_members_cannot_manage_the_team(bob_client, alpha, method, url):
    assert getattr(bob_client, method)(url).status_code == 403


def test_another_teams_admin_cannot_touch_alphas_people(charlie_client, alpha, bob, alice_client):
    bobs = Membership.objects.get(user=bob)
    assert (
        charlie_client.post(f"/settings/team/members/{bobs.pk}/role/", {"role": "admin"}).status_code == 404
    )
    assert charlie_client.post(f"/settings/team/members/{bobs.pk}/remove/").status_code == 404
    invite(alice_client)
    invitation = Invitation.objects.get()
    assert charlie_client.post(f"/settings/team/invitations/{invitation.pk}/revoke/").status_code == 404
    assert Membership.objects.get(user=bob).role == "member" and Invitation.objects.get().revoked_at is None


def test_switching_to_a_team_one_is_not_in_changes_nothing(charlie_client, charlie, alpha):
    charlie_client.post("/teams/switch/", {"team": alpha.pk})
    charlie.refresh_from_db()
    assert charlie.current_team_id != alpha.pk
    assert charlie_client.get("/settings/team/").content.decode().count("Alpha") == 0


def test_the_current_team_is_remembered_on_the_user(alpha, alice):
    second = Team.objects.create(name="Beta")
    Membership.objects.create(user=alice, team=second, role="admin")
    first = Client()
    first.force_login(alice)
    first.post("/teams/switch/", {"team": second.pk})
    other_device = Client()
    other_device.force_login(alice)
    assert "Beta: people" in other_device.get("/settings/team/").content.decode()


def test_site_admins_create_and_rename_teams_and_keep_their_own_view(alpha, alice):
    staff = User.objects.create_user("root", password=PASSWORD, is_staff=True)
    Membership.objects.create(user=staff, team=alpha, role="admin")
    client = Client()
    client.force_login(staff)
    client.post("/settings/teams/", {"name": "Aardvarks"})  # sorts before Alpha
    created = Team.objects.get(name="Aardvarks")
    assert "Alpha: people" in client.get("/settings/team/").content.decode()  # the view stays on Alpha
    client.post(f"/settings/teams/{created.pk}/rename/", {"name": "Ants"})
    assert Team.objects.filter(name="Ants").exists()
    assert list(
        AuditEntry.objects.exclude(action="signed_in").values_list("action", flat=True).order_by("pk")
    ) == [
        "team_created",
        "team_renamed",
    ]
    assert client.post("/settings/teams/", {"name": "alpha"}).status_code == 200  # taken, whatever the case
    assert Team.objects.count() == 2


def test_team_admins_cannot_create_teams(alice_client, alpha):
    assert alice_client.post("/settings/teams/", {"name": "Mine"}).status_code == 403
    assert alice_client.post(f"/settings/teams/{alpha.pk}/rename/", {"name": "Mine"}).status_code == 403
    assert not Team.objects.filter(name="Mine").exists()


def test_a_mail_server_that_fails_leaves_the_link_to_pass_on(alice_client, alpha, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2  # nothing listens
    link, page = invitation_page(alice_client, "dora@example.com")
    assert "the e-mail to dora@example.com could not be sent, so send the link yourself" in page
    assert Client().get(link).status_code == 200  # the invitation stands
