"""Provider ids are allocated atomically: two teams connecting the same kind at once each get their
own row, and a save never updates another team's provider."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from accounts.models import Team
from providers.models import Provider
from providers.registry import registry
from providers.setup import ProviderTaken
from tests.conftest import GOOD_KEYS

KEY = GOOD_KEYS["openai"]


@pytest.mark.django_db
def test_a_save_never_updates_another_teams_provider(alpha, charlie, fake_openai):
    registry.save("openai", {"api_key": KEY}, endpoint=fake_openai.url, team=alpha)
    other = charlie.memberships.get().team
    with pytest.raises(ProviderTaken):
        registry.save("openai", {"api_key": "sk-charlies-key-000000000000"}, provider_id="openai", team=other)
    provider = Provider.objects.get()
    assert provider.team == alpha and provider.credentials()["api_key"] == KEY


@pytest.mark.django_db(transaction=True)
def test_teams_connecting_the_same_kind_at_once_each_get_their_own_provider(fake_openai):
    teams = [Team.objects.create(name=f"Team {n}") for n in range(6)]
    start = threading.Barrier(len(teams))
    errors = []

    def connect(team):
        try:
            start.wait(timeout=30)
            registry.create(
                "openai", {"api_key": f"sk-key-of-{team.name}-000000"}, team=team, endpoint=fake_openai.url
            )
        except Exception as error:  # reported below, with its thread's team
            errors.append((team.name, error))
        finally:
            connection.close()

    threads = [threading.Thread(target=connect, args=(team,)) for team in teams]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    providers = list(Provider.objects.select_related("team"))
    assert len(providers) == len(teams)
    assert sorted(p.id for p in providers) == ["openai", *(f"openai-{n}" for n in range(2, 7))]
    for provider in providers:
        assert provider.credentials()["api_key"] == f"sk-key-of-{provider.team.name}-000000"
