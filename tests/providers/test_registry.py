from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from providers.adapters.openai import OpenAIAdapter
from providers.base import TaskType, TokenCount
from providers.credentials import CredentialsMissing
from providers.crypto import Secret
from providers.errors import InvalidCredentials, UnpricedModel
from providers.kinds import UnknownKind
from providers.models import Price, Provider, ProviderModel
from providers.registry import ProviderRegistry, UnknownProvider, registry
from tests.conftest import BAD_KEY, GOOD_KEYS

pytestmark = pytest.mark.django_db


def add_openai(endpoint: str = "", key: str = GOOD_KEYS["openai"]) -> Provider:
    return registry.save("openai", {"api_key": key}, endpoint=endpoint)


def add_anthropic(endpoint: str = "") -> Provider:
    return registry.save("anthropic", {"api_key": GOOD_KEYS["anthropic"]}, endpoint=endpoint)


def test_it_knows_the_builtin_kinds():
    assert [kind.id for kind in registry.kinds()] == ["openai", "anthropic", "gemini", "azure", "ollama"]
    assert registry.dialects() == ["anthropic", "azure", "gemini", "ollama", "openai"]


def test_it_saves_a_provider_with_its_catalogue_and_library_prices():
    provider = add_openai()
    assert provider.display_name == "OpenAI"
    assert provider.endpoint == "https://api.openai.com/v1"
    assert provider.default_model == "gpt-4o"
    assert sorted(provider.models.values_list("model_id", flat=True)) == [
        "gpt-4o",
        "gpt-4o-mini",
        "o1",
        "o3-mini",
        "text-embedding-3-large",
        "text-embedding-3-small",
        "text-embedding-ada-002",
    ]
    price = ProviderModel.objects.get(pk="openai/gpt-4o").current_price()
    assert (price.input_per_1m, price.output_per_1m, price.source) == (
        Decimal("2.5"),
        Decimal("10"),
        "library",
    )
    # The library has no embedding prices: the catalogue's published one, input only.
    price = ProviderModel.objects.get(pk="openai/text-embedding-3-small").current_price()
    assert (price.input_per_1m, price.output_per_1m, price.source) == (
        Decimal("0.02"),
        Decimal("0"),
        "config",
    )


def test_it_stores_credentials_encrypted_and_hands_adapters_the_plaintext():
    provider = add_openai()
    assert GOOD_KEYS["openai"] not in provider.credentials_encrypted
    adapter = registry.get("openai")
    assert isinstance(adapter, OpenAIAdapter)
    assert adapter.config.credentials["api_key"] == Secret(GOOD_KEYS["openai"])
    assert GOOD_KEYS["openai"] not in repr(adapter.config)


def test_it_shows_a_saved_key_masked():
    assert add_openai().masked_key() == "sk-...vX2Q"


def test_it_keeps_the_stored_key_when_an_update_leaves_it_empty():
    add_openai()
    registry.save("openai", {"api_key": ""}, display_name="OpenAI (team)")
    provider = Provider.objects.get(pk="openai")
    assert provider.display_name == "OpenAI (team)"
    assert provider.credentials()["api_key"] == GOOD_KEYS["openai"]


def test_it_replaces_a_key_and_keeps_optional_fields():
    registry.save("openai", {"api_key": GOOD_KEYS["openai"], "organization_id": "org-123"})
    registry.save("openai", {"api_key": "sk-new-key-0000000000001234"})
    assert Provider.objects.get(pk="openai").credentials() == {
        "api_key": "sk-new-key-0000000000001234",
        "organization_id": "org-123",
    }


def test_it_refuses_a_provider_without_its_required_key():
    with pytest.raises(CredentialsMissing, match="OpenAI needs: API key"):
        registry.save("openai", {})
    assert not Provider.objects.exists()


def test_it_refuses_a_credential_the_kind_does_not_take():
    with pytest.raises(CredentialsMissing, match="no setting 'api_secret'"):
        registry.save("openai", {"api_key": GOOD_KEYS["openai"], "api_secret": "x"})


def test_it_refuses_an_unknown_kind():
    with pytest.raises(UnknownKind, match="Known kinds: anthropic, azure, gemini, ollama, openai"):
        registry.save("openia", {"api_key": "x"})


def test_it_saves_two_providers_of_one_kind_under_their_own_ids():
    add_openai()
    registry.save(
        "openai",
        {"api_key": "sk-proxy-key-000000000000abcd"},
        provider_id="office-proxy",
        display_name="Office proxy",
        endpoint="http://127.0.0.1:9/v1/",
    )
    assert registry.get("office-proxy").config.endpoint == "http://127.0.0.1:9/v1"
    assert ProviderModel.objects.filter(provider_id="office-proxy").count() == 7  # 4 chat, 3 embedding


def test_it_loads_lists_enables_and_disables_providers():
    add_openai()
    add_anthropic()
    assert sorted(registry.load()) == ["anthropic", "openai"]
    registry.disable("openai")
    assert [p.id for p in registry.list_enabled()] == ["anthropic"]
    assert [p.id for p in registry.list()] == ["anthropic", "openai"]
    registry.enable("openai")
    assert len(registry.list_enabled()) == 2


def test_it_says_which_provider_is_unknown():
    with pytest.raises(UnknownProvider, match="'nope'"):
        registry.get("nope")
    with pytest.raises(UnknownProvider):
        registry.disable("nope")


def test_it_registers_an_adapter_kind():
    local = ProviderRegistry(adapters={})
    local.register("openai", OpenAIAdapter)
    assert local.adapter_class("openai") is OpenAIAdapter
    assert [kind.id for kind in local.kinds()] == ["openai"]


@pytest.mark.django_db(transaction=True)
async def test_it_records_when_a_provider_was_validated(fake_openai):
    from asgiref.sync import sync_to_async

    await sync_to_async(add_openai)(endpoint=fake_openai.url)
    await registry.validate("openai")
    provider = await Provider.objects.aget(pk="openai")
    assert timezone.now() - provider.last_validated_at < timedelta(seconds=5)


@pytest.mark.django_db(transaction=True)
async def test_it_leaves_last_validated_alone_when_validation_fails(fake_openai):
    from asgiref.sync import sync_to_async

    await sync_to_async(add_openai)(endpoint=fake_openai.url, key=BAD_KEY)
    with pytest.raises(InvalidCredentials):
        await registry.validate("openai")
    assert (await Provider.objects.aget(pk="openai")).last_validated_at is None


def test_it_lists_models_with_their_prices_and_default():
    add_openai()
    add_anthropic()
    entries = {entry.ref: entry for entry in registry.list_models()}
    assert entries["openai/gpt-4o"].is_default
    assert entries["anthropic/claude-sonnet-4-5"].info.input_per_1m == Decimal("3")
    assert [e.ref for e in registry.list_models("anthropic")] == [
        "anthropic/claude-haiku-4-5",
        "anthropic/claude-opus-4-5",
        "anthropic/claude-sonnet-4-5",
    ]


def test_it_gives_model_info_by_provider_slash_model():
    add_openai()
    entry = registry.model_info("openai/o1")
    assert entry.info.reasoning and entry.info.context_window == 200_000
    assert registry.model_info("openai/gpt-99") is None


def test_an_adapter_estimates_cost_exactly_in_decimal():
    add_openai()
    cost = registry.get("openai").estimate_cost("gpt-4o", TokenCount(input=1000, output=500))
    assert cost == Decimal("0.0075")
    assert isinstance(cost, Decimal)
    pricing = registry.get("openai").pricing("gpt-4o")
    assert (pricing.input_per_1m, pricing.output_per_1m) == (Decimal("2.5"), Decimal("10"))


def test_an_unpriced_model_refuses_to_be_costed_as_free():
    add_openai()
    Price.objects.filter(model_id="openai/o1").delete()
    adapter = registry.get("openai")
    assert not adapter.model_info("o1").priced
    with pytest.raises(UnpricedModel, match="no known price"):
        adapter.estimate_cost("o1", TokenCount(100, 100))


def test_an_admin_price_overrides_the_library_from_its_start():
    add_openai()
    model = ProviderModel.objects.get(pk="openai/gpt-4o")
    library = model.current_price()
    later = timezone.now() + timedelta(days=1)
    Price.objects.create(
        model=model,
        model_ref=model.id,
        input_per_1m=Decimal("2"),
        output_per_1m=Decimal("8"),
        source="admin",
        valid_from=later,
    )
    assert model.current_price() == library
    assert model.current_price(at=later + timedelta(seconds=1)).input_per_1m == Decimal("2")


def test_it_dates_a_changed_library_price_instead_of_rewriting_it():
    from providers.pricing import library_price
    from providers.setup import record_price

    add_openai()
    model = ProviderModel.objects.get(pk="openai/gpt-4o")
    first = model.current_price()
    assert first.cache_read_per_1m == Decimal("1.25")  # cached input has its own price
    library = library_price("gpt-4o", "openai")
    same = record_price(model, Decimal("2.5"), Decimal("10"), "library", library)
    assert same.pk == first.pk and same.checked_at >= first.checked_at
    changed = record_price(model, Decimal("2"), Decimal("9"), "library", library)
    assert changed.pk != first.pk
    assert model.current_price().pk == changed.pk
    first.refresh_from_db()
    assert first.input_per_1m == Decimal("2.5")


class TestRecommendModel:
    @pytest.fixture(autouse=True)
    def providers(self, db):
        add_openai()
        add_anthropic()

    def test_it_picks_the_cheapest_model_for_chat(self):
        assert registry.recommend_model(Decimal("1"), TaskType.CHAT) == "openai/gpt-4o-mini"

    def test_it_picks_a_reasoning_model_for_reasoning(self):
        # o3-mini: 1.1 / 4.4 per 1M, cheaper than o1 and Claude's reasoning models
        assert registry.recommend_model(Decimal("1"), "reasoning") == "openai/o3-mini"

    def test_it_needs_a_large_context_for_long_context(self):
        assert registry.recommend_model(Decimal("1"), TaskType.LONG_CONTEXT) == "openai/o3-mini"
        registry.disable("openai")
        assert registry.recommend_model(Decimal("1"), TaskType.LONG_CONTEXT) == "anthropic/claude-haiku-4-5"

    def test_it_respects_the_budget_for_a_typical_run(self):
        # A typical run is 1,000 tokens in and out: o3-mini, the cheapest reasoning model, costs
        # $0.0011 + $0.0044 = $0.0055 for it.
        assert registry.recommend_model(Decimal("0.0055"), TaskType.REASONING) == "openai/o3-mini"
        assert registry.recommend_model(Decimal("0.0054"), TaskType.REASONING) is None
        assert registry.recommend_model(Decimal("0.0001"), TaskType.CHAT) is None

    def test_it_never_recommends_an_unpriced_model(self):
        Price.objects.filter(model_id="openai/gpt-4o-mini").delete()
        # next cheapest for a typical run: o3-mini at $0.0055, before claude-haiku-4-5 at $0.006
        assert registry.recommend_model(Decimal("1"), TaskType.CHAT) == "openai/o3-mini"

    def test_it_skips_disabled_providers(self):
        registry.disable("openai")
        assert registry.recommend_model(Decimal("1"), TaskType.CHAT).startswith("anthropic/")
