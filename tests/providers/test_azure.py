"""Azure OpenAI specifics; the rest is in test_conformance.py."""

from __future__ import annotations

from decimal import Decimal

import pytest

from providers.adapters.azure import AzureOpenAIAdapter
from providers.base import GenerationRequest, Message, TokenCount
from providers.credentials import CredentialsMissing
from providers.errors import UnsupportedRequest
from providers.models import ProviderModel
from providers.registry import registry
from tests.conftest import GOOD_KEYS, adapter_for

ASK = (Message("system", "Be brief."), Message("user", "Hi"))


async def test_it_calls_the_deployment_url_with_the_api_version_and_key_header(fake_azure):
    await adapter_for(AzureOpenAIAdapter, fake_azure).generate(
        GenerationRequest("gpt4o-prod", ASK, max_tokens=50)
    )
    request = fake_azure.last_request
    assert request.path == "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
    assert request.headers["api-key"] == GOOD_KEYS["azure"] and "authorization" not in request.headers
    assert "model" not in request.json and request.json["max_tokens"] == 50


@pytest.mark.django_db(transaction=True)
async def test_a_reasoning_deployment_gets_max_completion_tokens(fake_azure):
    from asgiref.sync import sync_to_async

    await sync_to_async(registry.save)(
        "azure", {"api_key": GOOD_KEYS["azure"], "deployments": "reasoner=o3-mini"}, endpoint=fake_azure.url
    )
    adapter = await registry.aget("azure")
    await adapter.generate(GenerationRequest("reasoner", ASK, max_tokens=50))
    assert fake_azure.last_request.json["max_completion_tokens"] == 50
    with pytest.raises(UnsupportedRequest, match="azure/reasoner does not accept temperature"):
        await adapter.generate(GenerationRequest("reasoner", ASK, max_tokens=50, temperature=0.3))


@pytest.mark.django_db
def test_deployments_are_priced_and_limited_as_their_models(alpha):
    registry.save(
        "azure",
        {"api_key": GOOD_KEYS["azure"], "deployments": "gpt4o-prod=gpt-4o, mini=gpt-4o-mini"},
        endpoint="https://contoso.openai.azure.com",
        team=alpha,
    )
    prod = ProviderModel.objects.get(pk="azure/gpt4o-prod")
    assert (prod.context_window, prod.max_output) == (128000, 16384)
    assert registry.get("azure").estimate_cost("gpt4o-prod", TokenCount(1000, 500)) == Decimal("0.0075")


@pytest.mark.django_db
def test_malformed_deployments_are_explained(alpha):
    with pytest.raises(CredentialsMissing, match="Write each deployment as name=model, not 'gpt-4o'"):
        registry.save("azure", {"api_key": GOOD_KEYS["azure"], "deployments": "gpt-4o"}, team=alpha)
