"""Anthropic's Messages API and OpenAI's Responses API, each driven by its official SDK, against every
kind of provider behind the hub: a text answer, a streamed tool call and its result, a token count;
each fake speaks its provider's own wire format and records what the hub translated for it."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from tests.gateway.conftest import EVERY_KIND
from usage.models import Run, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)
KINDS = sorted(EVERY_KIND)
ASK = "What is the weather in Paris?"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
SUNNY = '{"sky": "sunny", "celsius": 21}'


@pytest.fixture
def claude(api_key, hub_url):
    return anthropic.Anthropic(base_url=hub_url, api_key=api_key.secret, max_retries=0, timeout=30)


@pytest.fixture
def codex(api_key, hub_url):
    return openai.OpenAI(base_url=f"{hub_url}/v1", api_key=api_key.secret, max_retries=0, timeout=30)


def sent(fake) -> dict:
    """What the provider last received."""
    return [r for r in fake.requests if r.method == "POST"][-1].json


def system_of(kind: str, body: dict) -> str:
    """The system prompt where the provider's own dialect puts it."""
    if kind == "anthropic":  # a string, or text blocks when some carry a cache breakpoint
        system = body["system"]
        return system if isinstance(system, str) else "\n\n".join(block["text"] for block in system)
    if kind == "gemini":
        return body["systemInstruction"]["parts"][0]["text"]
    first = body["messages"][0]
    return first["content"] if first["role"] == "system" else ""


def tools_of(kind: str, body: dict) -> list[tuple[str, dict]]:
    """(name, JSON schema) of each tool, where the provider's own dialect puts them."""
    if kind == "anthropic":
        return [(tool["name"], tool["input_schema"]) for tool in body["tools"]]
    if kind == "gemini":
        declared = [d for tool in body["tools"] for d in tool["functionDeclarations"]]
        return [(d["name"], d.get("parametersJsonSchema") or d["parameters"]) for d in declared]
    return [(tool["function"]["name"], tool["function"]["parameters"]) for tool in body["tools"]]


def charged(run_id: str, input_tokens: int, output_tokens: int) -> None:
    """The run's usage row holds the tokens the client was told, at the price of its model."""
    row = UsageRecord.objects.select_related("price").get(run_id=run_id)
    assert (row.input_tokens, row.output_tokens) == (input_tokens, output_tokens)
    price = row.price.input_per_1m * input_tokens + row.price.output_per_1m * output_tokens
    assert row.cost_usd == price / Decimal(1_000_000) and output_tokens > 0


def message_row(message) -> tuple[str, int, int]:
    usage = message.usage
    return str(uuid.UUID(message.id.removeprefix("msg_"))), usage.input_tokens, usage.output_tokens


def response_row(answer) -> tuple[str, int, int]:
    usage = answer.usage
    return str(uuid.UUID(answer.id.removeprefix("resp_"))), usage.input_tokens, usage.output_tokens


@pytest.mark.parametrize("kind", KINDS)
def test_the_anthropic_sdk_works_on_every_kind(claude, api_key, every_kind, kind):
    model, fake = EVERY_KIND[kind], every_kind[kind]
    system = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    message = claude.messages.create(
        model=model, max_tokens=200, system=system, messages=[{"role": "user", "content": "Say hello."}]
    )
    assert message.content[0].text == fake.reply_text and message.stop_reason == "end_turn"
    assert system_of(kind, sent(fake)) == "Be brief." and message.model == model
    charged(*message_row(message))

    weather = {"name": "get_weather", "description": "The weather in a city now.", "input_schema": SCHEMA}
    ask = [{"role": "user", "content": ASK}]
    with claude.messages.stream(model=model, max_tokens=200, messages=ask, tools=[weather]) as stream:
        events = list(stream)
        first = stream.get_final_message()
    assert any(e.type == "content_block_delta" and e.delta.type == "input_json_delta" for e in events)
    call = first.content[-1]
    assert call.type == "tool_use" and call.name == "get_weather" and call.input == {"city": "Paris"}
    assert first.stop_reason == "tool_use" and tools_of(kind, sent(fake)) == [("get_weather", SCHEMA)]
    charged(*message_row(first))

    result = {"type": "tool_result", "tool_use_id": call.id, "content": SUNNY}
    followup = [
        *ask,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": [result]},
    ]
    with claude.messages.stream(
        model=model, max_tokens=200, system="Be brief.", messages=followup, tools=[weather]
    ) as stream:
        texts = list(stream.text_stream)
        second = stream.get_final_message()
    assert len(texts) > 3 and "".join(texts) == second.content[0].text and "sunny" in second.content[0].text
    assert second.stop_reason == "end_turn" and system_of(kind, sent(fake)) == "Be brief."
    assert "sunny" in json.dumps(sent(fake))  # the result went back to the provider
    charged(*message_row(second))
    counted = claude.messages.count_tokens(model=model, messages=followup, tools=[weather])
    assert counted.input_tokens > 10
    assert UsageRecord.objects.filter(api_key=api_key.key).count() == 3
    assert not Run.objects.exclude(status=Run.Status.COMPLETED).exists()


@pytest.mark.parametrize("kind", KINDS)
def test_the_openai_sdks_responses_work_on_every_kind(codex, api_key, every_kind, kind):
    model, fake = EVERY_KIND[kind], every_kind[kind]
    answer = codex.responses.create(model=model, instructions="Be brief.", input="Say hello.")
    assert answer.status == "completed" and answer.output_text == fake.reply_text
    assert system_of(kind, sent(fake)) == "Be brief." and answer.model == model
    charged(*response_row(answer))

    weather = {"type": "function", "name": "get_weather", "description": "The weather now."}
    weather["parameters"] = SCHEMA
    plain = codex.responses.create(model=model, input=ASK, tools=[weather])
    assert json.loads(plain.output[-1].arguments) == {"city": "Paris"}
    events = list(codex.responses.create(model=model, input=ASK, tools=[weather], stream=True))
    kinds = [event.type for event in events]
    assert "response.function_call_arguments.delta" in kinds and kinds[-1] == "response.completed"
    streamed = events[-1].response
    call = streamed.output[-1]
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Paris"}
    assert tools_of(kind, sent(fake))[0][0] == "get_weather"
    charged(*response_row(streamed))

    followup = [
        {"role": "user", "content": ASK},
        *[item.model_dump(exclude_none=True) for item in streamed.output],
        {"type": "function_call_output", "call_id": call.call_id, "output": SUNNY},
    ]
    events = list(
        codex.responses.create(
            model=model, instructions="Be brief.", input=followup, tools=[weather], stream=True
        )
    )
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    final = events[-1].response
    assert len(deltas) > 3 and "".join(deltas) == final.output_text and "sunny" in final.output_text
    assert system_of(kind, sent(fake)) == "Be brief." and "sunny" in json.dumps(sent(fake))
    charged(*response_row(final))
    assert UsageRecord.objects.filter(api_key=api_key.key).count() == 4
    assert not Run.objects.exclude(status=Run.Status.COMPLETED).exists()


def claude_code_body(model: str) -> dict:
    """A request as Claude Code sends it through ANTHROPIC_BASE_URL (fields and shapes as captured
    from its traffic, text shortened): system blocks and the last user block marked for the prompt
    cache, tools with draft-07 input schemas, metadata.user_id, context_management keeping all
    thinking, temperature 1, max_tokens 32000, streamed."""
    ephemeral = {"type": "ephemeral"}
    bash = {
        "type": "object",
        "properties": {
            "command": {"type": "string", "description": "The command to execute"},
            "timeout": {"type": "number", "description": "Optional timeout in milliseconds"},
        },
        "required": ["command"],
        "additionalProperties": False,
        "$schema": "http://json-schema.org/draft-07/schema#",
    }
    read = {**bash, "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]}
    reminder = (
        "<system-reminder>\nAs you answer the user's questions, you can use this context.\n</system-reminder>"
    )
    return {
        "model": model,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": reminder},
                    {"type": "text", "text": "Which files are here?", "cache_control": ephemeral},
                ],
            }
        ],
        "temperature": 1,
        "system": [
            {
                "type": "text",
                "text": "You are Claude Code, Anthropic's official CLI for Claude.",
                "cache_control": ephemeral,
            },
            {
                "type": "text",
                "text": "You are an interactive CLI tool for software engineering tasks.",
                "cache_control": ephemeral,
            },
        ],
        "tools": [
            {"name": "Bash", "description": "Executes a given bash command.", "input_schema": bash},
            {
                "name": "Read",
                "description": "Reads a file.",
                "input_schema": read,
                "cache_control": ephemeral,
            },
        ],
        "metadata": {"user_id": "user_" + "5" * 64 + "_account__session_" + str(uuid.uuid4())},
        "max_tokens": 32000,
        "stream": True,
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    }


CLAUDE_CODE_HEADERS = {
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,"
    "context-management-2025-06-27,fine-grained-tool-streaming-2025-05-14",
    "anthropic-dangerous-direct-browser-access": "true",
    "x-app": "cli",
    "user-agent": "claude-cli/2.1.0 (external, cli)",
}


def claude_code_turn(hub_url: str, secret: str, body: dict) -> list[dict]:
    """The events of one streamed answer to a request sent as Claude Code sends it."""
    headers = {**CLAUDE_CODE_HEADERS, "authorization": f"Bearer {secret}"}  # ANTHROPIC_AUTH_TOKEN
    url = f"{hub_url}/v1/messages?beta=true"
    with httpx.stream("POST", url, json=body, headers=headers, timeout=30) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]


@pytest.mark.parametrize("kind", KINDS)
def test_a_claude_code_request_gets_a_streamed_answer_on_every_kind(api_key, hub_url, every_kind, kind):
    body = claude_code_body(EVERY_KIND[kind])
    events = claude_code_turn(hub_url, api_key.secret, body)
    kinds = [event["type"] for event in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    call = next(e["content_block"] for e in events if e["type"] == "content_block_start")
    arguments = "".join(e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta")
    assert call["name"] == "Bash" and json.loads(arguments)["command"]
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    received = sent(every_kind[kind])
    assert system_of(kind, received).startswith("You are Claude Code")
    assert [name for name, _ in tools_of(kind, received)] == ["Bash", "Read"]
    row = UsageRecord.objects.get(api_key=api_key.key)
    assert row.output_tokens == events[-2]["usage"]["output_tokens"] > 0

    # Its next turn: the tool_use sent back, the result marked for the prompt cache, as Claude Code does
    # (moving the message breakpoint to the newest turn: Anthropic takes at most 4).
    result = {"type": "tool_result", "tool_use_id": call["id"], "content": "README.md\nsetup.py"}
    body["messages"][0]["content"][-1].pop("cache_control")
    body["messages"] += [
        {"role": "assistant", "content": [{**call, "input": json.loads(arguments)}]},
        {"role": "user", "content": [{**result, "cache_control": {"type": "ephemeral"}}]},
    ]
    events = claude_code_turn(hub_url, api_key.secret, body)
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert "README.md" in text and events[-2]["delta"]["stop_reason"] == "end_turn"
    assert "setup.py" in json.dumps(sent(every_kind[kind]))
    assert UsageRecord.objects.filter(api_key=api_key.key).count() == 2
