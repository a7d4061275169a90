"""The circuit breaker through the API of another process: it shares the state in the database."""

from __future__ import annotations

import openai
import pytest

from gateway import keys
from providers import breaker
from providers.errors import NetworkError
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from usage.models import FallbackPolicy

pytestmark = pytest.mark.django_db(transaction=True)
ASK = [{"role": "user", "content": "Say hello."}]
HAIKU = "anthropic/claude-haiku-4-5"


@pytest.fixture
def client(alpha, fake_openai, fake_anthropic, hub_url):
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    registry.save("anthropic", {"api_key": GOOD_KEYS["anthropic"]}, endpoint=fake_anthropic.url, team=alpha)
    secret = keys.create(alpha, "ci").secret
    return openai.OpenAI(base_url=f"{hub_url}/v1", api_key=secret, max_retries=0, timeout=20)


def test_a_provider_this_process_saw_failing_is_skipped_by_the_server(
    client, alpha, fake_openai, fake_anthropic
):
    policy = FallbackPolicy.objects.create(team=alpha, enabled=True, order=[], retry_count=3)
    for _ in range(5):
        breaker.record_failure("openai", NetworkError("OpenAI"))
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=ASK, max_tokens=20)
    assert refused.value.status_code == 503 and refused.value.code == "upstream_unavailable"
    assert refused.value.body["message"].startswith("OpenAI failed 5 times in a row; skipped until ")
    assert 50 <= int(refused.value.response.headers["retry-after"]) <= 60
    policy.order = [HAIKU]
    policy.save()
    answer = client.chat.completions.create(model="openai/gpt-4o-mini", messages=ASK, max_tokens=20)
    assert answer.model == HAIKU and answer.choices[0].message.content == fake_anthropic.reply_text
    assert not [r for r in fake_openai.requests if r.path.endswith("/chat/completions")]
