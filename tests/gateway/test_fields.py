"""Every field of a Chat Completions request, for every dialect: passed through, translated, or
refused by name (never silently dropped). One table per dialect; a field the SDK knows and the
tables do not fails the completeness test, so a new field cannot slip through unclassified."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from openai.types.chat.completion_create_params import CompletionCreateParamsBase

from gateway import openai_format
from providers.adapters.anthropic import AnthropicAdapter
from providers.adapters.azure import AzureOpenAIAdapter
from providers.adapters.gemini import GeminiAdapter
from providers.adapters.ollama import OllamaAdapter
from providers.adapters.openai import OpenAIAdapter
from tests.conftest import adapter_for

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
FUNCTIONS = [{"name": "get_weather", "parameters": {"type": "object"}}]
SCHEMA = {
    "type": "json_schema",
    "json_schema": {"name": "city", "schema": {"type": "object"}, "strict": True},
}
# Each field with a value that differs from its default (and what it needs beside it).
SAMPLES: dict[str, dict[str, Any]] = {
    "audio": {"audio": {"voice": "alloy", "format": "wav"}},
    "frequency_penalty": {"frequency_penalty": 0.5},
    "function_call": {"functions": FUNCTIONS, "function_call": {"name": "get_weather"}},
    "functions": {"functions": FUNCTIONS},
    "logit_bias": {"logit_bias": {"50256": -100}},
    "logprobs": {"logprobs": True},
    "max_completion_tokens": {"max_completion_tokens": 77},
    "max_tokens": {"max_tokens": 77},
    "messages": {},
    "metadata": {"metadata": {"team": "ci"}},
    "modalities": {"modalities": ["text", "audio"]},
    "model": {},
    "moderation": {"moderation": {"model": "omni-moderation-latest"}},
    "n": {"n": 2},
    "parallel_tool_calls": {"tools": TOOLS, "parallel_tool_calls": False},
    "prediction": {"prediction": {"type": "content", "content": "Paris"}},
    "presence_penalty": {"presence_penalty": 0.5},
    "prompt_cache_key": {"prompt_cache_key": "k1"},
    "prompt_cache_options": {"prompt_cache_options": {"mode": "implicit"}},
    "prompt_cache_retention": {"prompt_cache_retention": "24h"},
    "reasoning_effort": {"reasoning_effort": "low"},
    "response_format": {"response_format": SCHEMA},
    "safety_identifier": {"safety_identifier": "user-1"},
    "seed": {"seed": 7},
    "service_tier": {"service_tier": "flex"},
    "stop": {"stop": ["END"]},
    "store": {"store": True},
    "stream": {"stream": True},
    "stream_options": {"stream": True, "stream_options": {"include_usage": True}},
    "temperature": {"temperature": 0.5},
    "tool_choice": {"tools": TOOLS, "tool_choice": "required"},
    "tools": {"tools": TOOLS},
    "top_logprobs": {"logprobs": True, "top_logprobs": 3},
    "top_p": {"top_p": 0.5},
    "user": {"user": "user-1"},
    "verbosity": {"verbosity": "low"},
    "web_search_options": {"web_search_options": {"search_context_size": "low"}},
    # On messages
    "message name": {"messages": [{"role": "user", "name": "alice", "content": "Hi"}]},
}
SAME = "same"  # accepted: no effect on the answer, so the upstream body is as without it
REFUSED = "refused"
HUB_REFUSED = {"audio", "modalities", "moderation", "web_search_options"}
NO_EFFECT = {
    "messages",
    "model",
    "metadata",
    "prompt_cache_key",
    "prompt_cache_options",
    "prompt_cache_retention",
    "safety_identifier",
    "service_tier",
    "store",
    "stream",
    "stream_options",
    "user",
}

OPENAI = {
    "frequency_penalty": ("frequency_penalty", 0.5),
    "function_call": ("tool_choice.function.name", "get_weather"),
    "functions": ("tools[0].function.name", "get_weather"),
    "logit_bias": ("logit_bias", {"50256": -100}),
    "logprobs": ("logprobs", True),
    "max_completion_tokens": ("max_tokens", 77),
    "max_tokens": ("max_tokens", 77),
    "n": ("n", 2),
    "parallel_tool_calls": ("parallel_tool_calls", False),
    "prediction": ("prediction.content", "Paris"),
    "presence_penalty": ("presence_penalty", 0.5),
    "reasoning_effort": ("reasoning_effort", "low"),  # on o3-mini
    "response_format": ("response_format.json_schema.strict", True),
    "seed": ("seed", 7),
    "stop": ("stop", ["END"]),
    "temperature": ("temperature", 0.5),
    "tool_choice": ("tool_choice", "required"),
    "tools": ("tools[0].function.name", "get_weather"),
    "top_logprobs": ("top_logprobs", 3),
    "top_p": ("top_p", 0.5),
    "verbosity": ("verbosity", "low"),
    "message name": ("messages[0].name", "alice"),
}
ANTHROPIC = {
    "frequency_penalty": REFUSED,
    "function_call": ("tool_choice", {"type": "tool", "name": "get_weather"}),
    "functions": ("tools[0].name", "get_weather"),
    "logit_bias": REFUSED,
    "logprobs": REFUSED,
    "max_completion_tokens": ("max_tokens", 77),
    "max_tokens": ("max_tokens", 77),
    "n": REFUSED,
    "parallel_tool_calls": ("tool_choice.disable_parallel_tool_use", True),
    "prediction": REFUSED,
    "presence_penalty": REFUSED,
    "reasoning_effort": ("thinking.budget_tokens", 2048),  # on claude-sonnet-4-5
    "response_format": ("tool_choice", {"type": "tool", "name": "json_answer"}),
    "seed": REFUSED,
    "stop": ("stop_sequences", ["END"]),
    "temperature": ("temperature", 0.5),
    "tool_choice": ("tool_choice", {"type": "any"}),
    "tools": ("tools[0].name", "get_weather"),
    "top_logprobs": REFUSED,
    "top_p": ("top_p", 0.5),
    "verbosity": REFUSED,
    "message name": ("messages[0].content[0].text", "alice: Hi"),
}
GEMINI = {
    "frequency_penalty": ("generationConfig.frequencyPenalty", 0.5),
    "function_call": ("toolConfig.functionCallingConfig.allowedFunctionNames", ["get_weather"]),
    "functions": ("tools[0].functionDeclarations[0].name", "get_weather"),
    "logit_bias": REFUSED,
    "logprobs": REFUSED,
    "max_completion_tokens": ("generationConfig.maxOutputTokens", 77),
    "max_tokens": ("generationConfig.maxOutputTokens", 77),
    "n": ("generationConfig.candidateCount", 2),
    "parallel_tool_calls": REFUSED,
    "prediction": REFUSED,
    "presence_penalty": ("generationConfig.presencePenalty", 0.5),
    "reasoning_effort": ("generationConfig.thinkingConfig.thinkingBudget", 1024),
    "response_format": ("generationConfig.responseJsonSchema", {"type": "object"}),
    "seed": ("generationConfig.seed", 7),
    "stop": ("generationConfig.stopSequences", ["END"]),
    "temperature": ("generationConfig.temperature", 0.5),
    "tool_choice": ("toolConfig.functionCallingConfig.mode", "ANY"),
    "tools": ("tools[0].functionDeclarations[0].name", "get_weather"),
    "top_logprobs": REFUSED,
    "top_p": ("generationConfig.topP", 0.5),
    "verbosity": REFUSED,
    "message name": ("contents[0].parts[0].text", "alice: Hi"),
}
OLLAMA = {
    "frequency_penalty": ("options.frequency_penalty", 0.5),
    "function_call": REFUSED,  # a named function: Ollama cannot force one
    "functions": ("tools[0].function.name", "get_weather"),
    "logit_bias": REFUSED,
    "logprobs": REFUSED,
    "max_completion_tokens": ("options.num_predict", 77),
    "max_tokens": ("options.num_predict", 77),
    "n": REFUSED,
    "parallel_tool_calls": REFUSED,
    "prediction": REFUSED,
    "presence_penalty": ("options.presence_penalty", 0.5),
    "reasoning_effort": REFUSED,  # llama3.2 does not think
    "response_format": ("format", {"type": "object"}),
    "seed": ("options.seed", 7),
    "stop": ("options.stop", ["END"]),
    "temperature": ("options.temperature", 0.5),
    "tool_choice": REFUSED,
    "tools": ("tools[0].function.name", "get_weather"),
    "top_logprobs": REFUSED,
    "top_p": ("options.top_p", 0.5),
    "verbosity": REFUSED,
    "message name": ("messages[0].content", "alice: Hi"),
}
# dialect -> (adapter, model, the model for reasoning_effort, expectations)
DIALECTS = {
    "openai": (OpenAIAdapter, "gpt-4o", "o3-mini", OPENAI),
    "azure": (AzureOpenAIAdapter, "gpt4o-prod", "reasoner", OPENAI),
    "anthropic": (AnthropicAdapter, "claude-haiku-4-5", "claude-sonnet-4-5", ANTHROPIC),
    "gemini": (GeminiAdapter, "gemini-2.5-flash", "gemini-2.5-flash", GEMINI),
    "ollama": (OllamaAdapter, "llama3.2:latest", "llama3.2:latest", OLLAMA),
}


def test_every_field_of_the_sdk_is_in_the_tables():
    fields = set(CompletionCreateParamsBase.__annotations__) | {"stream"}  # stream: on its subclasses
    assert fields == {name for name in SAMPLES if name != "message name"}
    assert fields == openai_format.USED | openai_format.IGNORED | set(openai_format.REFUSED)
    for _, _, _, table in DIALECTS.values():
        assert set(table) | NO_EFFECT | HUB_REFUSED == set(SAMPLES)


def outcome(dialect: str, field: str) -> tuple[list[str], dict, dict]:
    """(refused, upstream body, upstream body without the field) of a request with `field` set."""
    adapter_class, model, thinker, _ = DIALECTS[dialect]
    adapter = adapter_for(adapter_class, SimpleNamespace(url="http://127.0.0.1:9/v1"))
    model = thinker if field == "reasoning_effort" else model
    base = {"model": model, "messages": [{"role": "user", "content": "Hi"}]}
    chat = openai_format.parse(json.dumps({**base, **SAMPLES[field]}).encode())
    request = replace(chat.request, model=model)
    refused = chat.refused + adapter.refusals(request, adapter.model_info(model))
    plain = replace(openai_format.parse(json.dumps(base).encode()).request, model=model)
    return refused, adapter.payload(request), adapter.payload(plain)


def at(body: Any, path: str) -> Any:
    for key, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path):
        body = body[int(index)] if index else body[key]
    return body


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
@pytest.mark.parametrize("field", sorted(SAMPLES))
def test_each_field_is_passed_translated_or_refused_by_name(dialect, field):
    refused, body, plain = outcome(dialect, field)
    expected = DIALECTS[dialect][3].get(field, REFUSED if field in HUB_REFUSED else SAME)
    if expected == REFUSED:
        name = field.split()[-1] if field != "function_call" else "tool_choice function"
        assert any(reason.startswith(name) or name in reason for reason in refused), refused
    elif expected == SAME:
        assert not refused and body == plain
    else:
        path, value = expected
        assert not refused, refused
        assert at(body, path) == value


@pytest.mark.django_db(transaction=True)
def test_one_400_lists_every_unsupported_field_with_the_model(hub_url, api_key, every_kind):
    import httpx

    body = {
        "model": "anthropic/claude-haiku-4-5",
        "messages": [{"role": "user", "content": "Hi"}],
        "seed": 7,
        "logit_bias": {"1": 1},
        "logprobs": True,
        "modalities": ["text", "audio"],
    }
    response = httpx.post(
        f"{hub_url}/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {api_key.secret}"},
        timeout=30,
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"].startswith(
        "anthropic/claude-haiku-4-5 does not accept audio output (modalities), seed, logit_bias or logprobs."
    )
    assert error["code"] == "unsupported_parameter" and error["param"] == "audio"
    assert not [r for r in every_kind["anthropic"].requests if r.method == "POST"]


def test_anthropic_refuses_thinking_it_could_not_continue_after_tool_calls():
    adapter = adapter_for(AnthropicAdapter, SimpleNamespace(url="http://127.0.0.1:9/v1"))
    history = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
    ]
    body = {"model": "claude-sonnet-4-5", "messages": history, "tools": TOOLS, "reasoning_effort": "low"}
    request = openai_format.parse(json.dumps(body).encode()).request
    assert adapter.refusals(request, adapter.model_info("claude-sonnet-4-5")) == [
        "reasoning_effort after earlier tool calls"
    ]
