"""POST /v1/embeddings, driven by the official `openai` package against the hub with fakes behind it."""

from __future__ import annotations

import base64
import struct
import time
from decimal import Decimal

import httpx
import openai
import pytest

from gateway import keys
from providers.models import CustomKind, Price
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from tests.fakes.openai import fake_vector
from usage.models import Budget, FallbackPolicy, Run, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)
COMPATIBLE_KEY = "sk-test-office-tei-key-00000c0mp"


@pytest.fixture
def hub(alpha, fake_openai, fake_azure, fake_compatible, fake_ollama, fake_gemini):
    for kind, fake in (("openai", fake_openai), ("ollama", fake_ollama), ("gemini", fake_gemini)):
        registry.save(kind, {"api_key": GOOD_KEYS[kind]}, endpoint=fake.url, team=alpha)
    fake_azure.deployments = {**fake_azure.deployments, "emb": "text-embedding-3-small"}
    deployments = "mini=gpt-4o-mini, emb=text-embedding-3-small"
    credentials = {"api_key": GOOD_KEYS["azure"], "deployments": deployments}
    registry.save("azure", credentials, endpoint=fake_azure.url, team=alpha)
    fake_compatible.models = ["bge-m3"]
    fake_compatible.api_keys = {COMPATIBLE_KEY}
    model = {"id": "bge-m3", "context_window": 8192, "max_output": 1, "capabilities": ["embeddings"]}
    prices = {"input_per_1m": "0.01", "output_per_1m": "0"}
    definition = {
        "id": "office-tei",
        "name": "Office TEI",
        "dialect": "openai",
        "endpoint": fake_compatible.url,
    }
    CustomKind.objects.create(
        id="office-tei", team=alpha, definition={**definition, "models": [model | prices]}
    )
    registry.save("office-tei", {"api_key": COMPATIBLE_KEY}, team=alpha)
    FallbackPolicy.objects.create(team=alpha, enabled=False, retry_count=0)
    return keys.create(alpha, "retrieval")


@pytest.fixture
def client(hub, hub_url):
    return openai.OpenAI(base_url=f"{hub_url}/v1", api_key=hub.secret, max_retries=0, timeout=30)


def last_row(key) -> UsageRecord:
    return UsageRecord.objects.filter(api_key=key.key).latest("pk")


MODELS = {
    "openai": ("openai/text-embedding-3-small", 1536),
    "azure": ("azure/emb", 1536),
    "compatible": ("office-tei/bge-m3", 1024),
    "ollama": ("ollama/nomic-embed-text:latest", 768),
    "gemini": ("gemini/gemini-embedding-001", 3072),
}


@pytest.mark.parametrize("kind", MODELS)
def test_a_list_of_texts_comes_back_as_one_vector_each_in_order(client, hub, kind):
    model, size = MODELS[kind]
    texts = ["the cat sat", "on the mat", "and purred"]
    answer = client.embeddings.create(model=model, input=texts, encoding_format="float")
    assert [item.index for item in answer.data] == [0, 1, 2]
    assert [item.embedding for item in answer.data] == [fake_vector(t, size) for t in texts]
    assert answer.model == model and answer.usage.prompt_tokens > 0
    row = last_row(hub)
    assert row.input_tokens == answer.usage.prompt_tokens and row.output_tokens == 0
    assert row.kind == "embeddings"


def test_the_sdk_default_base64_decodes_to_the_same_floats(client, fake_openai):
    # The SDK asks for base64 unless told otherwise, and decodes it itself.
    answer = client.embeddings.create(model="openai/text-embedding-3-small", input="hello world")
    assert answer.data[0].embedding == fake_vector("hello world", 1536)
    assert fake_openai.last_request.json["encoding_format"] == "float"  # the hub encodes base64 itself


def test_base64_is_little_endian_float32(hub, hub_url):
    body = {"model": "openai/text-embedding-3-small", "input": "abc", "encoding_format": "base64"}
    headers = {"authorization": f"Bearer {hub.secret}"}
    answer = httpx.post(f"{hub_url}/v1/embeddings", json=body, headers=headers, timeout=30).json()
    raw = base64.b64decode(answer["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == fake_vector("abc", 1536)


def test_dimensions_are_passed_and_shorten_the_vectors(client, fake_openai):
    answer = client.embeddings.create(
        model="openai/text-embedding-3-small", input="short", dimensions=256, encoding_format="float"
    )
    assert len(answer.data[0].embedding) == 256 and fake_openai.last_request.json["dimensions"] == 256


@pytest.mark.parametrize("kind", ["ollama", "gemini"])
def test_dimensions_reach_ollama_and_gemini(client, kind, request):
    model, _ = MODELS[kind]
    answer = client.embeddings.create(model=model, input=["a", "b"], dimensions=64, encoding_format="float")
    assert [len(item.embedding) for item in answer.data] == [64, 64]
    sent = request.getfixturevalue(f"fake_{kind}").last_request.json
    assert (sent.get("dimensions") or sent["requests"][1]["outputDimensionality"]) == 64


@pytest.mark.parametrize("kind", ["ollama", "gemini"])
def test_token_arrays_are_refused_by_name_where_the_provider_takes_only_text(client, kind, request):
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model=MODELS[kind][0], input=[[1, 2, 3]])
    assert "input as token arrays" in refused.value.message
    assert request.getfixturevalue(f"fake_{kind}").requests == []


def test_ollama_is_told_not_to_cut_inputs_short_and_its_count_is_charged(client, hub, fake_ollama):
    answer = client.embeddings.create(model="ollama/nomic-embed-text:latest", input=["one two", "three"])
    assert fake_ollama.last_request.json["truncate"] is False
    counted = fake_ollama.count_tokens("one two") + fake_ollama.count_tokens("three")
    assert answer.usage.prompt_tokens == last_row(hub).input_tokens == counted


def test_gemini_gets_at_most_100_inputs_a_call_and_the_hub_count_is_charged(client, hub, fake_gemini):
    texts = [f"text number {n}" for n in range(150)]
    answer = client.embeddings.create(
        model="gemini/gemini-embedding-001", input=texts, encoding_format="float"
    )
    assert [len(batch) for batch in fake_gemini.embedded] == [100, 50]
    assert [item.embedding for item in answer.data] == [fake_vector(t, 3072) for t in texts]
    run = Run.objects.get()
    assert answer.usage.prompt_tokens == run.estimated_input_tokens == last_row(hub).input_tokens


def test_token_arrays_are_sent_as_they_are(client, fake_openai):
    answer = client.embeddings.create(
        model="openai/text-embedding-3-small", input=[[1, 2, 3], [4, 5]], encoding_format="float"
    )
    assert fake_openai.last_request.json["input"] == [[1, 2, 3], [4, 5]]
    assert answer.usage.prompt_tokens == 5 and len(answer.data) == 2


def test_the_usage_row_costs_the_price_times_the_tokens(client, hub):
    answer = client.embeddings.create(model="openai/text-embedding-3-small", input=["a b c d"] * 4)
    row = last_row(hub)
    assert row.cost_usd == Decimal("0.02") * answer.usage.prompt_tokens / 1_000_000
    run = Run.objects.get(uuid=row.run_id)
    assert run.status == Run.Status.COMPLETED and run.cost_usd == row.cost_usd and run.reserved_usd is None


def test_a_budget_refusal_is_a_402_and_nothing_is_sent(client, alpha, fake_openai):
    Budget.objects.create(team=alpha, monthly_limit_usd=Decimal("0"))
    with pytest.raises(openai.APIStatusError) as refused:
        client.embeddings.create(model="openai/text-embedding-3-small", input="hi")
    assert refused.value.status_code == 402 and "Monthly Alpha team budget" in refused.value.message
    assert fake_openai.embedded == []
    assert Run.objects.get().reserved_usd is None


def test_a_provider_failure_is_an_openai_error_and_its_hold_is_released(client, alpha, hub, fake_openai):
    Budget.objects.create(team=alpha, monthly_limit_usd=Decimal("10"))
    fake_openai.fail_next(500)
    with pytest.raises(openai.APIStatusError) as failed:
        client.embeddings.create(model="openai/text-embedding-3-small", input="hi")
    assert failed.value.status_code == 502 and failed.value.body["code"] == "upstream_error"
    run = Run.objects.get()
    assert run.status == Run.Status.FAILED and run.reserved_usd is None and run.error_message
    assert not UsageRecord.objects.exists()


def test_a_provider_rate_limit_is_a_429_with_retry_after(client, fake_openai):
    fake_openai.fail_next_as("rate_limited")
    with pytest.raises(openai.RateLimitError) as limited:
        client.embeddings.create(model="openai/text-embedding-3-small", input="hi")
    assert limited.value.response.headers["retry-after"] == "7"


def test_a_broken_answer_is_an_error_not_a_wrong_vector(client, fake_openai):
    fake_openai.reply_raw_next(b'{"object": "list", "data": [], "usage": {"prompt_tokens": 1}}')
    with pytest.raises(openai.APIStatusError) as failed:
        client.embeddings.create(model="openai/text-embedding-3-small", input=["one", "two"])
    assert failed.value.status_code == 502 and "0 embeddings for 2 inputs" in failed.value.message


def test_a_provider_reporting_more_tokens_than_held_is_charged_the_hold(client, hub, fake_openai):
    fake_openai.reported_usage = {"prompt_tokens": 10_000_000}
    answer = client.embeddings.create(model="openai/text-embedding-3-small", input="four words of text")
    run = Run.objects.get()
    assert answer.usage.prompt_tokens == run.estimated_input_tokens == last_row(hub).input_tokens
    assert "10,000,000 input tokens" in run.usage_warning


def test_a_chat_model_is_refused_before_anything_is_sent(client, fake_openai):
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model="openai/gpt-4o-mini", input="hi")
    assert "not an embedding model" in refused.value.message and fake_openai.requests == []


def test_an_unpriced_model_fails_closed(client, hub, fake_compatible):
    Price.objects.filter(model_id="office-tei/bge-m3").delete()
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model="office-tei/bge-m3", input="hi")
    assert refused.value.body["code"] == "unpriced_model" and fake_compatible.embedded == []


def test_an_unpriced_model_under_a_budget_is_refused_even_for_a_key_that_allows_it(alpha, hub_url, hub):
    Price.objects.filter(model_id="office-tei/bge-m3").delete()
    Budget.objects.create(team=alpha, monthly_limit_usd=Decimal("100"))
    lenient = keys.create(alpha, "lenient", allow_unpriced=True)
    client = openai.OpenAI(base_url=f"{hub_url}/v1", api_key=lenient.secret, max_retries=0)
    with pytest.raises(openai.APIStatusError) as refused:
        client.embeddings.create(model="office-tei/bge-m3", input="hi")
    assert refused.value.status_code == 402 and "no known price" in refused.value.message


def test_an_input_longer_than_the_model_takes_is_refused(client, fake_openai):
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model="openai/text-embedding-3-small", input=["ok", "word " * 9000])
    assert "input[1]" in refused.value.message and fake_openai.embedded == []


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": ["a", [1, 2]]}, "input"),
        ({"input": [[1, -2]]}, "input"),
        ({"input": "a", "dimensions": 0}, "dimensions"),
        ({"input": "a", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "a", "truncate": True}, "truncate"),
    ],
)
def test_a_malformed_request_is_a_400_naming_the_field(hub, hub_url, body, param):
    headers = {"authorization": f"Bearer {hub.secret}"}
    sent = {"model": "openai/text-embedding-3-small", **body}
    answer = httpx.post(f"{hub_url}/v1/embeddings", json=sent, headers=headers, timeout=30)
    assert answer.status_code == 400 and answer.json()["error"]["param"] == param


def test_a_key_keeps_to_its_allowed_models(alpha, hub, hub_url):
    limited = keys.create(alpha, "chat only", allowed_models=["openai/gpt-4o-mini"])
    client = openai.OpenAI(base_url=f"{hub_url}/v1", api_key=limited.secret, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        client.embeddings.create(model="openai/text-embedding-3-small", input="hi")


def test_a_wrong_key_is_a_401_in_openais_shape(hub, hub_url):
    client = openai.OpenAI(base_url=f"{hub_url}/v1", api_key="sk-wrong-0000", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        client.embeddings.create(model="openai/text-embedding-3-small", input="hi")
    assert refused.value.body["code"] == "invalid_api_key"


def test_a_chat_row_says_it_was_a_generation(client, hub):
    client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], max_tokens=20
    )
    assert last_row(hub).kind == "generation"


def test_a_client_that_hangs_up_mid_call_ends_the_run_settled(hub, hub_url, alpha, fake_openai):
    Budget.objects.create(team=alpha, monthly_limit_usd=Decimal("10"))
    fake_openai.hang_next(5)
    client = openai.OpenAI(base_url=f"{hub_url}/v1", api_key=hub.secret, max_retries=0, timeout=1)
    with pytest.raises(openai.APITimeoutError):
        client.embeddings.create(model="openai/text-embedding-3-small", input="patience")
    deadline = time.monotonic() + 20
    while Run.objects.filter(status=Run.Status.STREAMING).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    run = Run.objects.get()
    assert run.status == Run.Status.CANCELLED and run.reserved_usd is None
    # The provider may have done the work: the input estimate is charged, as for chat.
    assert last_row(hub).input_tokens == run.estimated_input_tokens > 0


def test_an_embedding_model_is_refused_for_chat_by_name(client, fake_openai):
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="openai/text-embedding-3-small", messages=[{"role": "user", "content": "Hi"}]
        )
    assert "it is an embedding model" in refused.value.message and fake_openai.requests == []
