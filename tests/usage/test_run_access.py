"""Members and runs: only a run's owner or a team admin starts or cancels it; whether members see
each other's runs (their prompts and answers) is the team's setting, own runs only by default."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator

from accounts.models import Team
from audit.models import AuditEntry
from automations.models import Automation
from gateway import keys
from llmhub.asgi import application
from providers.base import Message
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from usage import access, runs
from usage.models import Run

ORIGIN = (b"origin", b"http://127.0.0.1")
HOST = (b"host", b"127.0.0.1")
PROMPT = [Message("user", "Alice's confidential draft")]


def cookie(client) -> tuple[bytes, bytes]:
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


@pytest.fixture
def openai(alpha, fake_openai):
    return registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)


@pytest.fixture
def alice_run(alice, alpha, openai):
    return runs.create_run(alice, alpha, "openai/gpt-4o-mini", PROMPT, 100)


@pytest.fixture
def api_run(alpha, openai):
    key = keys.create(alpha, "ci").key
    return runs.create_run(
        None, alpha, "openai/gpt-4o-mini", [Message("user", "API prompt")], 100, api_key=key
    )


def show(team: Team, visibility: str) -> None:
    team.run_visibility = visibility
    team.save()


@pytest.mark.django_db
def test_by_default_a_member_sees_only_their_own_runs(
    bob_client, alice_client, bob, alpha, alice_run, api_run
):
    assert bob_client.get(f"/runs/{alice_run.uuid}/").status_code == 404
    assert bob_client.get(f"/runs/{api_run.uuid}/").status_code == 404
    assert bob_client.get(f"/runs/{alice_run.uuid}/again/").status_code == 404
    bobs = runs.create_run(bob, alpha, "openai/gpt-4o-mini", [Message("user", "mine")], 100)
    assert "Start run" in bob_client.get(f"/runs/{bobs.uuid}/").content.decode()
    assert list(access.visible_runs(bob, alpha)) == [bobs]
    page = alice_client.get(f"/runs/{bobs.uuid}/").content.decode()  # an admin sees and controls all
    assert "Start run" in page
    assert set(access.visible_runs(alice_run.user, alpha)) == {alice_run, api_run, bobs}


@pytest.mark.django_db
def test_a_shown_run_offers_a_member_no_start_button(bob_client, alpha, alice_run):
    show(alpha, Team.RunVisibility.TEAM)
    page = bob_client.get(f"/runs/{alice_run.uuid}/").content.decode()
    assert "Alice&#x27;s confidential draft" in page
    assert "Start run" not in page and 'value="start"' not in page and "Waiting for alice to start it" in page


@pytest.mark.django_db
def test_api_runs_are_shown_to_members_only_when_the_team_shows_everything(bob, alpha, api_run):
    show(alpha, Team.RunVisibility.TEAM)
    assert api_run not in access.visible_runs(bob, alpha)
    show(alpha, Team.RunVisibility.ALL)
    assert api_run in access.visible_runs(bob, alpha)
    assert not access.can_control(bob, api_run)


@pytest.mark.django_db
def test_the_spend_page_and_an_automation_list_only_visible_runs(bob_client, alice, alpha, openai):
    automation = Automation.objects.create(team=alpha, name="Draft", prompt_template="Draft {x}")
    run = runs.create_run(alice, alpha, "openai/gpt-4o-mini", PROMPT, 100, automation=automation)
    assert f"/runs/{run.uuid}/" not in bob_client.get("/spend/").content.decode()
    assert f"/runs/{run.uuid}/" not in bob_client.get(f"/automations/{automation.pk}/").content.decode()


@pytest.mark.django_db
def test_only_a_team_admin_changes_the_setting_and_it_is_audited(alice_client, bob_client, alpha):
    settings = {"run_visibility": "team", "stored_response_retention_days": 30}
    assert bob_client.post("/teams/settings/", settings).status_code == 403
    assert alice_client.post("/teams/settings/", settings).status_code == 302
    alpha.refresh_from_db()
    assert alpha.run_visibility == "team"
    entry = AuditEntry.objects.get(action="team_settings_changed")
    assert (entry.before["run_visibility"], entry.after["run_visibility"]) == ("own", "team")


@pytest.mark.django_db(transaction=True)
async def test_a_member_watching_a_teammates_run_cannot_start_or_cancel_it(
    bob_client, alpha, alice_run, fake_openai
):
    alpha.run_visibility = Team.RunVisibility.TEAM
    await alpha.asave()
    communicator = WebsocketCommunicator(
        application, f"/ws/runs/{alice_run.uuid}/", headers=[cookie(bob_client), ORIGIN, HOST]
    )
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"action": "start", "HEADERS": {}})
    assert await communicator.receive_nothing(timeout=0.5)
    await communicator.disconnect()
    assert (await Run.objects.aget(pk=alice_run.pk)).status == Run.Status.PENDING
    assert fake_openai.requests == []


@pytest.mark.django_db(transaction=True)
async def test_by_default_a_member_cannot_even_connect_to_a_teammates_run(bob_client, alice_run):
    communicator = WebsocketCommunicator(
        application, f"/ws/runs/{alice_run.uuid}/", headers=[cookie(bob_client), ORIGIN, HOST]
    )
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()
