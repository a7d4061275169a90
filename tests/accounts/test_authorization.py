"""Every URL pattern and websocket route, for each of: anonymous, a member, the team's admin, and
another team's admin. A new page or route must be classified here, or this test fails: no page can
forget its access check."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib import admin
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse

from accounts import membership
from accounts.models import Membership
from automations.models import Automation
from gateway import keys
from gateway.models import ModelAlias
from llmhub.asgi import application
from providers.base import Message
from providers.models import CustomKind
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from usage import runs
from usage.routing import websocket_urlpatterns

WHO = ("anonymous", "member", "admin", "other_team")
PUBLIC, MEMBER, ADMIN, STAFF, API = "public", "member", "admin", "staff", "api"
# name: (method, who may use it, whether it names an object of Alice's team)
PAGES = {
    "home": ("get", MEMBER, False),
    "accounts:first-admin": ("get", PUBLIC, False),
    "accounts:login": ("get", PUBLIC, False),
    "accounts:logout": ("post", PUBLIC, False),
    "accounts:switch-team": ("post", PUBLIC, False),
    "accounts:team-settings": ("get", ADMIN, False),
    "accounts:password-change": ("get", MEMBER, False),
    "accounts:join": ("get", PUBLIC, False),
    "accounts:team": ("get", ADMIN, False),
    "accounts:invite": ("post", ADMIN, False),
    "accounts:new-account": ("post", ADMIN, False),
    "accounts:change-role": ("post", ADMIN, True),
    "accounts:revoke-invitation": ("post", ADMIN, True),
    "accounts:teams": ("get", STAFF, False),
    "accounts:rename-team": ("post", STAFF, True),
    "healthz": ("get", PUBLIC, False),
    "readyz": ("get", PUBLIC, False),
    "metrics": ("get", PUBLIC, False),  # loopback clients (as here) or LLMHUB_METRICS_TOKEN
    "audit:csv": ("get", ADMIN, False),
    "providers:sync": ("post", ADMIN, True),
    "providers:breaker-reset": ("post", ADMIN, True),
    "usage:runs": ("get", MEMBER, False),
    "usage:run-detail": ("get", MEMBER, True),
    "usage:budgets": ("get", ADMIN, False),
    "usage:dismiss-alert": ("post", MEMBER, False),
    "usage:key-budget": ("get", ADMIN, True),
    "api-model": ("get", API, False),
    "providers:connect": ("get", ADMIN, False),
    "providers:custom-new": ("get", ADMIN, False),
    "providers:connect-kind": ("get", ADMIN, True),
    "providers:custom-edit": ("get", ADMIN, True),
    "providers:custom-delete": ("get", ADMIN, True),
    "providers:models": ("get", ADMIN, True),
    "providers:settings": ("get", ADMIN, False),
    "providers:default-model": ("post", ADMIN, False),
    "providers:reload": ("post", STAFF, False),
    "providers:toggle": ("post", ADMIN, True),
    "providers:edit": ("get", ADMIN, True),
    "providers:delete": ("get", ADMIN, True),
    "audit:log": ("get", ADMIN, False),
    "usage:playground": ("get", MEMBER, False),
    "usage:run": ("get", MEMBER, True),
    "usage:retry": ("get", MEMBER, True),
    "usage:team-budget": ("get", ADMIN, False),
    "usage:team-fallback": ("get", ADMIN, False),
    "usage:automation-fallback": ("get", ADMIN, True),
    "usage:provider-budget": ("get", ADMIN, True),
    "usage:spend": ("get", MEMBER, False),
    "usage:spend-csv": ("get", MEMBER, False),
    "automations:list": ("get", MEMBER, False),
    "automations:new": ("get", ADMIN, False),
    "automations:detail": ("get", MEMBER, True),
    "automations:edit": ("get", ADMIN, True),
    "automations:delete": ("get", ADMIN, True),
    "automations:change-model": ("get", ADMIN, True),
    "automations:switch-model": ("post", ADMIN, True),
    "gateway:keys": ("get", ADMIN, False),
    "gateway:key-limits": ("post", ADMIN, True),
    "gateway:revoke": ("post", ADMIN, True),
    "gateway:add-alias": ("post", ADMIN, False),
    "gateway:delete-alias": ("post", ADMIN, True),
    "api-models": ("get", API, False),
    "api-chat": ("post", API, False),
    "api-completions": ("post", API, False),
    "api-embeddings": ("post", API, False),
    "api-messages": ("post", API, False),
    "api-count-tokens": ("post", API, False),
    "api-responses": ("post", API, False),
    "api-response": ("get", API, False),
    "api-input-items": ("get", API, False),
    "api-unknown": ("get", API, False),
    "accounts:remove-member": ("post", ADMIN, True),  # last: for the admin it does remove Bob
}
SOCKETS = {"ws/runs/<uuid:run_id>/": MEMBER}


def url_names(patterns, namespace: str = "") -> list[str]:
    names = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if pattern.app_name == "admin":
                continue  # the Django admin: test_the_django_admin_is_for_staff_only
            names += url_names(
                pattern.url_patterns, f"{pattern.namespace}:" if pattern.namespace else namespace
            )
        elif isinstance(pattern, URLPattern):
            names.append(namespace + (pattern.name or "api-unknown"))
    return names


def test_every_url_and_socket_is_classified():
    assert sorted(url_names(get_resolver().url_patterns)) == sorted(PAGES)
    assert sorted(str(route.pattern) for route in websocket_urlpatterns) == sorted(SOCKETS)


@pytest.fixture(autouse=True)
def fresh_key_limiter():
    """Each matrix sends every /v1/ path without a key: seven of them, five matrices, would pass
    the wrong-key limit of this process (gateway.keys) and be answered 429 instead."""
    keys._failures.clear()


@pytest.fixture
def world(alpha, alice, bob, charlie, fake_openai):
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    definition = {"id": "vllm", "name": "Office vLLM", "dialect": "openai", "endpoint": fake_openai.url}
    CustomKind.objects.create(id="vllm", team=alpha, definition=definition)
    automation = Automation.objects.create(team=alpha, name="Sum", prompt_template="Sum {x}")
    run = runs.create_run(bob, alpha, "openai/gpt-4o-mini", [Message("user", "Bob's")], 100)
    key = keys.create(alpha, "ci").key
    alias = ModelAlias.objects.create(team=alpha, name="fast", target="openai/gpt-4o-mini")
    invitation = membership.invite(alpha, "member", "", alice, link_for=str)
    return {
        "membership_id": Membership.objects.get(team=alpha, user=bob).pk,
        "invitation_id": invitation.invitation.pk,
        "team_id": alpha.pk,
        "token": invitation.token,
        "model_id": "openai/gpt-4o-mini",
        "kind_id": "vllm",
        "provider_id": "openai",
        "run_id": run.uuid,
        "automation_id": automation.pk,
        "key_id": key.pk,
        "alias_id": alias.pk,
        "response_id": f"resp_{run.uuid.hex}",
        "run": run,
    }


def url_for(name: str, world: dict) -> str:
    if name == "api-unknown":
        return "/v1/images/generations"
    for attempt in (
        [],
        ["kind_id"],
        ["provider_id"],
        ["run_id"],
        ["automation_id"],
        ["key_id"],
        ["alias_id"],
        ["membership_id"],
        ["invitation_id"],
        ["team_id"],
        ["token"],
        ["model_id"],
        ["response_id"],
    ):
        try:
            return reverse(name, kwargs={k: world[k] for k in attempt})
        except NoReverseMatch:
            continue
    raise AssertionError(f"cannot build {name}")


def client_for(who: str, client, bob_client, alice_client, charlie_client):
    return {"anonymous": client, "member": bob_client, "admin": alice_client, "other_team": charlie_client}[
        who
    ]


def expected(access: str, owned: bool, who: str, status: int, location: str) -> bool:
    signed_out = status == 302 and location.startswith("/accounts/login/")
    allowed = status in (200, 302) and not signed_out
    refused = status in (403, 404)
    if access == PUBLIC:
        return status in (200, 302)
    if access == API:
        return status in (401, 404) and not signed_out  # a session is no API key
    if who == "anonymous":
        return signed_out
    if access == STAFF:
        return refused
    if who == "member":
        return allowed if access == MEMBER else refused
    if who == "admin":
        return allowed
    return refused if owned else allowed  # another team's admin: only their own team's pages


@pytest.mark.django_db
@pytest.mark.parametrize("who", WHO)
def test_the_access_matrix(world, who, client, bob_client, alice_client, charlie_client):
    user_client = client_for(who, client, bob_client, alice_client, charlie_client)
    wrong = []
    for name, (method, access, owned) in PAGES.items():
        if name == "accounts:logout":
            continue  # it would sign the client out for the rest of the loop; public either way
        url = url_for(name, world)
        response = getattr(user_client, method)(url)
        location = response.get("Location", "")
        if not expected(access, owned, who, response.status_code, location):
            wrong.append(f"{method.upper()} {url}: {response.status_code} {location}")
    assert wrong == []


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["anonymous", "member", "admin", "other_team"])
def test_the_django_admin_is_for_staff_only(
    who, client, bob_client, alice_client, charlie_client, admin_client
):
    user_client = client_for(who, client, bob_client, alice_client, charlie_client)
    for model in admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        response = user_client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url
        assert admin_client.get(url).status_code == 200, url


def cookie(client) -> tuple[bytes, bytes]:
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("who", "allowed"), [("anonymous", False), ("member", True), ("admin", True), ("other_team", False)]
)
async def test_the_run_socket_matrix(world, who, allowed, client, bob_client, alice_client, charlie_client):
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    if who != "anonymous":
        headers.append(cookie(client_for(who, client, bob_client, alice_client, charlie_client)))
    communicator = WebsocketCommunicator(application, f"/ws/runs/{world['run_id']}/", headers=headers)
    connected, _ = await communicator.connect()
    assert connected is allowed
    await communicator.disconnect()
    await sync_to_async(world["run"].refresh_from_db)()
