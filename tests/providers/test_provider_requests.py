"""What the hub sends a provider: the request httpx's client would send (headers, compact UTF-8
JSON), built from parts prepared once per provider, and nothing carried from one request to the
next: a cookie one provider sets is never sent back, to it or to another team's provider."""

from __future__ import annotations

import json

from providers.adapters.openai import OpenAIAdapter
from providers.base import Delta, Finished, GenerationRequest, Message
from tests.conftest import adapter_for
from tests.fakes.server import sse

REQUEST = GenerationRequest("gpt-4o-mini", (Message("user", "Héllo"),), max_tokens=50, stream=True)
HELLO = [sse({"choices": [{"index": 0, "delta": {"content": "Hi"}}]}), sse("[DONE]")]


async def drain(adapter) -> list:
    return [event async for event in adapter.events(REQUEST)]


async def test_a_cookie_a_provider_sets_is_never_sent_back(fake_openai):
    team_a, team_b = adapter_for(OpenAIAdapter, fake_openai), adapter_for(OpenAIAdapter, fake_openai)
    fake_openai.stream_raw_next(HELLO, headers={"set-cookie": "session=team-a; Path=/"})
    assert (await drain(team_a))[0] == Delta("Hi")
    for adapter in (team_a, team_b):
        assert isinstance((await drain(adapter))[-1], Finished)
        assert "cookie" not in fake_openai.last_request.headers


async def test_the_request_is_what_httpx_sends_for_json(fake_openai):
    adapter = adapter_for(OpenAIAdapter, fake_openai, headers={"X-Team": "a"})
    for _ in range(2):  # the second from the prepared URL and headers
        await drain(adapter)
        sent = fake_openai.last_request
        assert sent.path == "/v1/chat/completions"
        body = json.dumps(sent.body, ensure_ascii=False, separators=(",", ":")).encode()
        assert sent.headers["content-length"] == str(len(body))  # compact UTF-8, not \u escapes
        assert sent.headers["content-type"] == "application/json"
        assert sent.headers["user-agent"] == "LLMHub/0.1" and sent.headers["x-team"] == "a"
        assert sent.headers["accept-encoding"] == "gzip, deflate"
        assert sent.headers["authorization"].startswith("Bearer ")


async def test_a_content_type_the_provider_sets_is_the_one_sent(fake_openai):
    adapter = adapter_for(
        OpenAIAdapter, fake_openai, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    for _ in range(2):
        await drain(adapter)
        sent = fake_openai.last_request
        body = json.dumps(sent.body, ensure_ascii=False, separators=(",", ":")).encode()
        assert sent.headers["content-type"] == "application/json; charset=utf-8"
        assert sent.headers["content-length"] == str(len(body))
