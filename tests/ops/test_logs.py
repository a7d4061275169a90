"""Log lines: JSON with the request id and the line's fields; secrets redacted wherever they hide."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from ops.logs import JsonFormatter, TextFormatter, redact, request_id
from tests.conftest import GOOD_KEYS

HUB_KEY = "llmh-Zx81yQvT0aL2mN7pR4sU6wB9cD3eF5gH1jK0kL2mP4q"


def record(
    message: str, *args, extra: dict | None = None, error: Exception | None = None
) -> logging.LogRecord:
    exc_info = None
    if error is not None:
        try:
            raise error
        except type(error):
            exc_info = sys.exc_info()
    line = logging.LogRecord("llmhub.test", logging.WARNING, __file__, 1, message, args, exc_info)
    for name, value in (extra or {}).items():
        setattr(line, name, value)
    return line


def test_a_json_line_has_time_level_logger_message_fields_and_the_request_id():
    token = request_id.set("req-42")
    try:
        line = json.loads(JsonFormatter().format(record("run %s ended", "abc", extra={"tokens": 12})))
    finally:
        request_id.reset(token)
    assert line["level"] == "WARNING" and line["logger"] == "llmhub.test"
    assert line["message"] == "run abc ended" and line["tokens"] == 12 and line["request_id"] == "req-42"
    assert line["time"].startswith("20")


def test_a_text_line_ends_with_its_request_id():
    token = request_id.set("req-43")
    try:
        assert TextFormatter().format(record("Not Found: /x")) == "Not Found: /x [request req-43]"
    finally:
        request_id.reset(token)


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()], ids=["json", "text"])
def test_secrets_are_redacted_from_messages_arguments_fields_and_tracebacks(formatter):
    provider_keys = [GOOD_KEYS["openai"], GOOD_KEYS["anthropic"], GOOD_KEYS["gemini"]]
    fields = {
        "url": f"https://generativelanguage.example/v1?key={GOOD_KEYS['gemini']}&alt=sse",
        "headers": {"x-api-key": GOOD_KEYS["anthropic"]},
    }
    error = ValueError(f"upstream said: bad key {GOOD_KEYS['anthropic']} / {HUB_KEY}")
    message = "calling with %s and header Authorization: Bearer %s"
    line = formatter.format(record(message, GOOD_KEYS["openai"], HUB_KEY, extra=fields, error=error))
    for secret in [*provider_keys, HUB_KEY, HUB_KEY[-20:]]:
        assert secret not in line
    assert "sk-...vX2Q" in line and "llmh-...mP4q" in line  # what the UI shows of a key


def test_redaction_leaves_ordinary_text_alone():
    text = "run 7f3e2a9b-0d1c-4e5f-8a9b-0c1d2e3f4a5b completed openai/gpt-4o in 1.2 s, request ci-job-42"
    assert redact(text) == text


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ('"AUTHORIZATION": "Bearer xyzsecret1"', '"AUTHORIZATION": "[redacted]"'),
        ("Proxy-Authorization=Basic dXNlcjpwYXNz", "Proxy-Authorization=[redacted]"),
        ("X-Goog-Api-Key: AIzaSyA1b2C3d4", "X-Goog-Api-Key: [redacted]"),
        ("then BEARER abcdefgh9 went", "then BEARER [redacted] went"),
        ("GET /v1?alt=sse&ACCESS_TOKEN=abc123 200", "GET /v1?alt=sse&ACCESS_TOKEN=[redacted] 200"),
        (
            "key SK-abcdefgh1234 and Llmh-abcdefgh5678 and aIZAabcdefgh9012",
            "key SK-...1234 and Llmh-...5678 and aIZA...9012",
        ),
    ],
)
def test_every_kind_of_secret_is_found_in_any_case(text, redacted):
    # The expression skips positions by their first character (ops/logs.py): in any case, each kind's.
    assert redact(text) == redacted


def test_a_json_request_line_with_its_masked_key_is_left_as_it_is():
    line = json.dumps({"message": "POST /v1/chat/completions 200 3.2 ms", "api_key": "llmh-...abcd"})
    assert redact(line) == line


def request_and_run_fields() -> dict:
    """The fields of the request and run lines (ops/middleware.py, ops/observe.py) whose names hold a
    marker: a JSON line that has them is passed over by the expression unless something else has one."""
    return {
        "api_key": "llmh-...mP4q",
        "api_key_id": 7,
        "input_tokens": 12,
        "output_tokens": None,
        "time_to_first_token_ms": 180,
    }


def test_a_json_line_with_only_our_keyed_fields_is_written_as_it_is():
    fields = request_and_run_fields()
    line = JsonFormatter().format(record("POST /v1/chat/completions 200 3.2 ms", extra=fields))
    assert '"api_key": "llmh-...mP4q"' in line and json.loads(line)["input_tokens"] == 12


@pytest.mark.parametrize(
    "others",
    [
        {"path": f"/v1/{HUB_KEY}"},
        {"error": f"upstream said: bad key {GOOD_KEYS['anthropic']}"},
        {"team": "team Bearer abcdefghij"},
        {"url": f"https://x.example/v1?key={GOOD_KEYS['gemini']}"},
        {"error": f'"api_key": null, "input_tokens": 3 {HUB_KEY}'},  # our fields' text inside a value
    ],
    ids=["path", "error", "bearer", "query", "lookalike"],
)
def test_a_secret_beside_our_keyed_fields_is_redacted(others):
    fields = request_and_run_fields() | others
    line = JsonFormatter().format(record("run abc completed", extra=fields))
    for secret in [HUB_KEY, GOOD_KEYS["anthropic"], GOOD_KEYS["gemini"], "abcdefghij"]:
        assert secret not in line
    assert json.loads(line)["api_key"] == "llmh-...mP4q"


@pytest.mark.parametrize(
    "name", ["api_key", "api_key_id", "input_tokens", "output_tokens", "time_to_first_token_ms"]
)
def test_a_secret_in_one_of_our_keyed_fields_is_redacted(name):
    fields = request_and_run_fields() | {name: HUB_KEY}
    line = JsonFormatter().format(record("run abc completed", extra=fields))
    assert HUB_KEY not in line and json.loads(line)[name] == "llmh-...mP4q"


class _LibraryFields(JsonFormatter):
    """The formatter with python-json-logger's own BaseJsonFormatter.add_fields for the record's
    fields: what ours must write, field for field and in the same order."""

    def _add_record_fields(self, log_data: dict, record: logging.LogRecord, message_dict: dict) -> None:
        super(JsonFormatter, self).add_fields(log_data, record, message_dict)


@pytest.mark.parametrize(
    "line",
    [
        record("run %s ended", "abc", extra={"event": "run", "tokens": 12, "api_key": None, "_private": 1}),
        record("POST /v1/x 200", extra={"request_id": "own", "levelname": "x", "message": "y"}),
        record("plain"),
        record("failed", extra={"status": 500}, error=ValueError("boom")),
        record({"a dict": "as the message", "exc_info": "kept"}, extra={"status": 200}),
    ],
    ids=["extras", "reserved-and-own-names", "plain", "traceback", "dict-message"],
)
def test_a_json_line_has_the_fields_python_json_logger_gives_in_its_order(line):
    line.__dict__[7] = "a key that is not a string"
    token = request_id.set("req-44")
    try:
        ours, theirs = JsonFormatter().format(line), _LibraryFields().format(line)
    finally:
        request_id.reset(token)
    assert ours == theirs
    assert list(json.loads(ours)) == list(json.loads(theirs))


def test_the_secret_markers_are_looked_for_each():
    from ops import logs

    for marker in logs._MARKERS:
        assert logs._has_marker(f"a {marker.upper()} b") and logs._has_marker(marker)
    assert not logs._has_marker("POST /v1/chat/completions 200 3.1 ms [request 0123abcd]")
