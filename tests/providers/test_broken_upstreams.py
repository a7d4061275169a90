"""Upstreams that break the protocol: every one ends in a typed error that says what happened, read
within fixed memory bounds, never a crash or a hang."""

from __future__ import annotations

import asyncio
import gzip
import json

import pytest

from providers.adapters.anthropic import AnthropicAdapter
from providers.adapters.gemini import GeminiAdapter
from providers.adapters.ollama import OllamaAdapter
from providers.adapters.openai import OpenAIAdapter
from providers.base import Delta, Finished, GenerationRequest, Message
from providers.errors import StreamInterrupted, UnexpectedResponse
from providers.http import MAX_ERROR_BODY_BYTES, MAX_LINE_BYTES
from tests.conftest import adapter_for
from tests.fakes.server import sse

REQUEST = GenerationRequest("gpt-4o-mini", (Message("user", "Hi"),), max_tokens=50, stream=True)


async def drain(adapter, request=REQUEST) -> list:
    return [event async for event in adapter.events(request)]


@pytest.fixture
def openai(fake_openai):
    return adapter_for(OpenAIAdapter, fake_openai)


async def test_a_stream_line_over_the_limit_is_refused_without_reading_it_whole(openai, fake_openai):
    fake_openai.huge_line_next(10 * 1024 * 1024)
    with pytest.raises(UnexpectedResponse) as refused:
        await drain(openai)
    assert refused.value.user_message == (
        "Unexpected response from OpenAI: a line of its stream was over 1 MiB; it was not read further."
    )
    assert await asyncio.to_thread(fake_openai.client_disconnected.wait, 5)  # hung up mid-line


async def test_a_line_just_under_the_limit_is_read(openai, fake_openai):
    text = "y" * (MAX_LINE_BYTES - 200)
    fake_openai.stream_raw_next([sse({"choices": [{"delta": {"content": text}}]}), sse("[DONE]")])
    events = await drain(openai)
    assert events[0] == Delta(text) and isinstance(events[-1], Finished)


async def test_an_error_body_over_the_limit_is_cut_and_reported(openai, fake_openai):
    fake_openai.fail_next(500, body=b"E" * (10 * 1024 * 1024))
    with pytest.raises(UnexpectedResponse) as refused:
        await drain(openai)
    assert refused.value.status == 500 and len(refused.value.body) <= MAX_ERROR_BODY_BYTES
    assert "its error body was over 64 KiB" in refused.value.user_message


async def test_an_html_page_with_status_200_is_an_unexpected_response(openai, fake_openai):
    fake_openai.reply_raw_next(
        b"<html><body>Please sign in to the proxy</body></html>", content_type="text/html"
    )
    with pytest.raises(UnexpectedResponse) as refused:
        await drain(openai)
    assert refused.value.user_message == (
        "Unexpected response from OpenAI: it answered with a web page (text/html), not a stream."
    )
    assert not isinstance(refused.value, StreamInterrupted)


async def test_a_body_that_is_not_an_event_stream_is_an_unexpected_response(openai, fake_openai):
    fake_openai.stream_raw_next(
        [b"Service temporarily unavailable\n", b"try later\n"], content_type="text/plain"
    )
    with pytest.raises(UnexpectedResponse) as refused:
        await drain(openai)
    assert "it did not answer with an event stream" in refused.value.user_message


@pytest.mark.parametrize(
    "chunk",
    [
        {"choices": "none today"},
        {"choices": [{"delta": "text"}]},
        {"choices": [{"delta": {"content": ["not", "a", "string"]}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "id": 7, "function": {"name": "f"}}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": {"a": 1}}}]}}]},
        ["a", "list"],
    ],
)
async def test_json_of_the_wrong_shape_is_an_unexpected_response(openai, fake_openai, chunk):
    fake_openai.stream_raw_next([sse(chunk), sse("[DONE]")])
    with pytest.raises(UnexpectedResponse) as refused:
        await drain(openai)
    assert (
        refused.value.user_message
        == "Unexpected response from OpenAI: its answer did not have the expected shape."
    )


@pytest.mark.parametrize("data", ['{"choices": [', '{"choices": []} and more', "", "NaN NaN"])
async def test_an_event_that_is_not_json_is_an_unexpected_response(openai, fake_openai, data):
    fake_openai.stream_raw_next([f"data: {data}\n\n".encode(), sse("[DONE]")])
    with pytest.raises(UnexpectedResponse) as refused:
        await drain(openai)
    assert refused.value.user_message == "Unexpected response from OpenAI: its answer was not valid JSON."


async def test_an_event_of_json_between_spaces_is_read(openai, fake_openai):
    event = b'data:   {"choices": [{"delta": {"content": "spaced"}}]} \t\n\n'
    fake_openai.stream_raw_next([event, sse("[DONE]")])
    assert (await drain(openai))[0] == Delta("spaced")


async def test_a_body_that_is_not_gzip_despite_its_header_is_an_unexpected_response(openai, fake_openai):
    fake_openai.stream_raw_next([b"this is not gzip at all" * 10], headers={"content-encoding": "gzip"})
    with pytest.raises(UnexpectedResponse) as refused:
        await drain(openai)
    assert "its answer could not be decoded (content-encoding gzip)" in refused.value.user_message


async def test_a_real_gzip_stream_is_read(openai, fake_openai):
    body = sse({"choices": [{"delta": {"content": "zipped"}}]}) + sse("[DONE]")
    fake_openai.stream_raw_next([gzip.compress(body)], headers={"content-encoding": "gzip"})
    assert (await drain(openai))[0] == Delta("zipped")


async def test_line_ends_split_across_chunks_are_read_as_one(openai, fake_openai):
    pieces = [b'data: {"choices":[{"delta":{"content":"a"}}]}\r', b"\n\r", b"\n", b"data: [DONE]\r\n\r\n"]
    fake_openai.stream_raw_next(pieces)
    events = await drain(openai)
    assert events[0] == Delta("a") and isinstance(events[1], Finished)


async def test_a_stream_reads_the_same_whole_or_a_byte_at_a_time(openai, fake_openai):
    """Many events to a read (as a fast provider's arrive) or a byte to a read (a UTF-8 character
    and a CRLF split between reads): the same events."""
    body = (
        b": keep-alive\r\n\r\n"
        + b'data: {"choices":[{"delta":{"content":"caf\xc3\xa9 "}}]}\r\n\r\n'
        + b'event: message\ndata: {"choices":[{"delta":{"content":"na\xc3\xafve"}}]}\r\r'
        + b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
        + b'"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\ndata: [DONE]\n\n'
    )
    fake_openai.stream_raw_next([body])
    whole = await drain(openai)
    assert whole[:2] == [Delta("café "), Delta("naïve")] and whole[2].usage.output == 2
    fake_openai.stream_raw_next([body[i : i + 1] for i in range(len(body))])
    assert await drain(openai) == whole


async def test_bytes_that_are_not_utf8_are_read_as_replacement_characters(openai, fake_openai):
    body = b'data: {"choices":[{"delta":{"content":"caf\xe9 \xff"}}]}\n\ndata: [DONE]\n\n'
    fake_openai.stream_raw_next([body])
    events = await drain(openai)
    assert events[0] == Delta("caf\ufffd \ufffd") and isinstance(events[1], Finished)


@pytest.mark.parametrize(
    ("usage", "says"),
    [
        ({"completion_tokens": -5}, "completion_tokens is -5"),
        ({"prompt_tokens": "lots"}, "prompt_tokens is 'lots'"),
        ({"completion_tokens": 12.5}, "completion_tokens is 12.5"),
        ({"completion_tokens": 10**30}, f"completion_tokens is {10**30}"),
        ({"prompt_tokens": True}, "prompt_tokens is True"),
    ],
)
async def test_usage_that_is_not_a_token_count_is_an_unexpected_response(openai, fake_openai, usage, says):
    fake_openai.reported_usage = usage
    with pytest.raises(UnexpectedResponse) as refused:
        await drain(openai)
    assert (
        refused.value.user_message
        == f"Unexpected response from OpenAI: its usage field {says}, not a token count."
    )
    fake_openai.reported_usage = {"completion_tokens": 7.0}  # a whole number written as a float is fine
    assert (await drain(openai))[-1].usage.output == 7


async def test_anthropic_negative_usage_is_an_unexpected_response(fake_anthropic):
    adapter = adapter_for(AnthropicAdapter, fake_anthropic)
    start = {
        "type": "message_start",
        "message": {"model": "m", "usage": {"input_tokens": 10, "output_tokens": 1}},
    }
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": -40}}
    fake_anthropic.stream_raw_next([sse(start, "message_start"), sse(delta, "message_delta")])
    with pytest.raises(UnexpectedResponse, match="output_tokens is -40"):
        await drain(adapter, GenerationRequest("claude-haiku-4-5", (Message("user", "Hi"),), 50, stream=True))


async def test_gemini_absurd_usage_is_an_unexpected_response(fake_gemini):
    adapter = adapter_for(GeminiAdapter, fake_gemini)
    chunk = {
        "candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 10**12},
    }
    fake_gemini.stream_raw_next([sse(chunk)])
    with pytest.raises(UnexpectedResponse, match="candidatesTokenCount is 1000000000000"):
        await drain(adapter, GenerationRequest("gemini-2.5-flash", (Message("user", "Hi"),), 50, stream=True))


async def test_ollama_usage_of_the_wrong_type_is_an_unexpected_response(fake_ollama):
    adapter = adapter_for(OllamaAdapter, fake_ollama)
    lines = [
        json.dumps({"message": {"content": "hi"}, "done": False}).encode() + b"\n",
        json.dumps({"done": True, "done_reason": "stop", "eval_count": "12"}).encode() + b"\n",
    ]
    fake_ollama.stream_raw_next(lines, content_type="application/x-ndjson")
    with pytest.raises(UnexpectedResponse, match="eval_count is '12'"):
        await drain(adapter, GenerationRequest("llama3.2:latest", (Message("user", "Hi"),), 50, stream=True))
