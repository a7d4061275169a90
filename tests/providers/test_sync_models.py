from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command

from providers.catalog import sync_models
from providers.models import Price, ProviderModel
from providers.registry import registry
from tests.conftest import GOOD_KEYS

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def openai(alpha, fake_openai):
    return registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)


def test_it_adds_listed_chat_models_priced_from_the_library(openai, fake_openai):
    fake_openai.models = [*fake_openai.models, "my-finetune-x"]
    report = sync_models(openai)
    added = ProviderModel.objects.get(pk="openai/gpt-4.1")
    assert added.current_price().input_per_1m == Decimal("2")
    assert "text-embedding-3-small" not in report.added  # not a chat model
    assert report.added == ["gpt-4.1", "my-finetune-x"]
    assert report.unpriced == ["my-finetune-x"]
    assert "price unknown for my-finetune-x" in str(report)


def test_an_unpriced_model_is_flagged_in_the_picker(openai, fake_openai, alice_client):
    fake_openai.models = [*fake_openai.models, "my-finetune-x"]
    sync_models(openai)
    html = alice_client.get("/providers/openai/models/").content.decode()
    assert "my-finetune-x" in html and "price unknown" in html


def test_a_changed_library_price_is_dated_not_rewritten(openai):
    row = ProviderModel.objects.get(pk="openai/gpt-4o")
    Price.objects.filter(model=row).update(input_per_1m=Decimal("5"))  # as if the library had changed since
    report = sync_models(openai)
    assert report.repriced == ["gpt-4o"]
    assert row.prices.count() == 2 and row.current_price().input_per_1m == Decimal("2.5")


def test_the_command_reports_and_exits_1_when_a_provider_fails(openai, fake_openai, capsys):
    call_command("sync_models", "openai")
    assert "openai: 5 models listed" in capsys.readouterr().out
    fake_openai.fail_next_as("invalid_key")
    with pytest.raises(SystemExit) as exit_:
        call_command("sync_models", "openai")
    assert exit_.value.code == 1
    assert "Your OpenAI API key is invalid" in capsys.readouterr().err
