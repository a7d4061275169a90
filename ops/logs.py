"""Log lines for operators: plain text or one JSON object a line (LLMHUB_LOG_FORMAT), secrets redacted.

Both formatters redact the finished line, so a secret cannot slip through a message, an argument, an
extra field or a traceback: `Authorization` values, `llmh-` hub keys, `sk-` and `AIza` provider keys
and key-like query parameters become `llmh-...abcd` (the last four characters at most) or
`[redacted]`. Our own lines never hold a secret to begin with; this is the net under them.
Every line written while a request is handled carries its request id.
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter as BaseJsonFormatter

# Set by ops.middleware for the request being handled; sync_to_async carries it into worker threads.
request_id: ContextVar[str] = ContextVar("request_id", default="")

_HEADER_NAMES = r"authorization|proxy-authorization|x-api-key|api-key|x-goog-api-key"
_KEY_LIKE = [
    # "Authorization: Bearer x", "x-api-key": "x", api-key=x: whatever the value, it goes.
    (
        re.compile(rf"(?i)\b({_HEADER_NAMES})(\"?\s*[:=]\s*\"?)(?:bearer\s+|basic\s+)?[^\s\",;]+"),
        r"\1\2[redacted]",
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"), r"\1 [redacted]"),
    (re.compile(r"(?i)([?&](?:key|api_key|api-key|access_token|token)=)[^&\s\"']+"), r"\1[redacted]"),
]
# Keys that announce themselves: keep the prefix and the last four characters, as the UI shows them.
_PREFIXED = re.compile(r"\b(llmh-|sk-|AIza)[A-Za-z0-9_-]{8,}")


def redact(text: str) -> str:
    for pattern, replacement in _KEY_LIKE:
        text = pattern.sub(replacement, text)
    return _PREFIXED.sub(lambda m: f"{m.group(1)}...{m.group(0)[-4:]}", text)


class TextFormatter(logging.Formatter):
    """The message alone (as before), with its request id when there is one; redacted."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        current = request_id.get()
        if current and not hasattr(record, "request_id"):
            line = f"{line} [request {current}]"
        return redact(line)


class JsonFormatter(BaseJsonFormatter):
    """One JSON object a line: time, level, logger, message, the request id, and the line's extra
    fields (`logger.info("...", extra={"run_id": ...})`); redacted."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", "time")
        kwargs.setdefault("json_ensure_ascii", False)
        super().__init__("{levelname}{name}{message}", style="{", **kwargs)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict) -> None:
        super().add_fields(log_data, record, message_dict)
        if "request_id" not in log_data and request_id.get():
            log_data["request_id"] = request_id.get()

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
