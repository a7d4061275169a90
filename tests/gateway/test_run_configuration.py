"""A run's provider configuration (its key decrypted, where it goes) is built once per configuration
version and kept in the server process (providers/registry.py ProviderRegistry._run_adapter): every
change an admin makes is seen by the very next request, and a key never follows a provider that was
pointed somewhere else."""

from __future__ import annotations

import openai
import pytest

from providers.models import Provider
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from tests.fakes.openai import FakeOpenAI

pytestmark = pytest.mark.django_db(transaction=True)

ROTATED = "sk-test-openai-rotated-key-0001zZ9Y"


def ask(sdk) -> str:
    reply = sdk.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Say hello."}], max_tokens=16
    )
    return reply.choices[0].message.content


def keys_sent(server) -> list[str]:
    return [
        key
        for request in server.requests
        for key in (GOOD_KEYS["openai"], ROTATED)
        if key in str(request.headers)
    ]


@pytest.fixture
def connected(openai_and_anthropic, fake_openai, sdk):
    """The OpenAI fake answering, its configuration already kept by the server (a request made)."""
    ask(sdk)
    assert keys_sent(fake_openai)[-1] == GOOD_KEYS["openai"]
    return fake_openai


def test_a_rotated_key_is_sent_from_the_next_request(connected, sdk, alpha):
    connected.api_keys.add(ROTATED)
    registry.save("openai", {"api_key": ROTATED}, team=alpha)
    ask(sdk)
    assert keys_sent(connected)[-1] == ROTATED
    connected.api_keys.discard(GOOD_KEYS["openai"])  # the old key would now be refused
    ask(sdk)
    assert keys_sent(connected)[-1] == ROTATED


def test_a_disabled_provider_is_refused_from_the_next_request(connected, sdk):
    sent = len(connected.requests)
    registry.disable("openai")
    with pytest.raises(openai.APIStatusError, match="disabled"):
        ask(sdk)
    assert len(connected.requests) == sent
    registry.enable("openai")
    ask(sdk)


def test_a_provider_pointed_elsewhere_does_not_get_the_kept_key(connected, sdk):
    """Moved as the Django admin would (a save of the row, without the key typed again)."""
    evil = FakeOpenAI(api_keys={GOOD_KEYS["openai"]}).start()
    try:
        provider = Provider.objects.get(pk="openai")
        provider.endpoint = evil.url
        provider.save()
        with pytest.raises(openai.APIStatusError):
            ask(sdk)
        assert evil.requests == []
    finally:
        evil.stop()


def test_a_kept_configuration_holds_its_key_as_a_secret(connected):
    adapter = registry.get("openai", only_model="gpt-4o-mini")
    assert GOOD_KEYS["openai"] not in repr(adapter.config)
    assert adapter.config.credential("api_key") == GOOD_KEYS["openai"]
