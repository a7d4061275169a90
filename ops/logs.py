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
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from pythonjsonlogger.json import JsonEncoder
from pythonjsonlogger.json import JsonFormatter as BaseJsonFormatter

# What no line of ours prints, which the logging module would otherwise work out for every record
# (its documented switches, "Optimization" in the logging HOWTO): where the call was made (a walk up
# the stack) and the multiprocessing process name. The thread and the pid stay: a line is written
# from the thread that logs, and the JSON line carries the pid.
logging._srcfile = None
logging.logMultiprocessing = False

# Set by ops.middleware for the request being handled; sync_to_async carries it into worker threads.
request_id: ContextVar[str] = ContextVar("request_id", default="")

_HEADER_NAMES = "authorization|proxy-authorization|x-api-key|api-key|x-goog-api-key"
# One pass over a line finds every kind: "Authorization: Bearer x", "x-api-key": "x" and api-key=x
# (whatever the value, it goes); "Bearer x" alone; key-like query parameters; and keys that announce
# themselves (llmh-, sk-, AIza), which keep their prefix and last four characters as the UI shows them.
# Each kind begins with one of the characters of the lookahead: the search passes over every other
# position at once, not trying each kind there (a JSON line, whose "api_key" field sends it through
# the expression, is redacted in a quarter of the time: ~50 µs less, twice a request).
_SECRET = re.compile(
    r"(?=[apxbls?&])(?:"
    rf"(?P<header>\b(?:{_HEADER_NAMES})\"?\s*[:=]\s*\"?)(?:bearer\s+|basic\s+)?[^\s\",;]+"
    r"|(?P<scheme>\b(?:bearer|basic))\s+[A-Za-z0-9._~+/=-]{6,}"
    r"|(?P<query>[?&](?:key|api_key|api-key|access_token|token)=)[^&\s\"']+"
    r"|\b(?P<prefix>llmh-|sk-|AIza)[A-Za-z0-9_-]{8,}"
    r")",
    re.IGNORECASE,
)
# Most lines hold none of these: they skip the regular expression.
_MARKERS = ("auth", "key", "bearer", "basic", "token", "sk-", "llmh-", "aiza")


def _replace(match: re.Match) -> str:
    if match["prefix"]:
        return f"{match['prefix']}...{match[0][-4:]}"
    if match["scheme"]:
        return f"{match['scheme']} [redacted]"
    return f"{match['header'] or match['query']}[redacted]"


# Fields of the request and run lines (ops/middleware.py, ops/observe.py) whose name holds a marker
# ("key", "token") and whose value cannot hold a secret: a number, null, or a key masked as the UI
# shows it (four characters at most). Only JSON's own quotes match (a quote inside a value is
# escaped), so text inside a value never passes for one of these fields.
_OWN_FIELDS = re.compile(
    r'"(?:api_key_id|input_tokens|output_tokens|time_to_first_token_ms)": (?:\d+|null)'
    r'|"api_key": (?:null|"llmh-\.\.\.[A-Za-z0-9_-]{0,4}")'
)


def structured() -> bool:
    """Whether lines are written as JSON objects (LLMHUB_LOG_FORMAT=json): only those carry a line's
    extra fields. A text line is its message alone, so the request and run lines (ops/middleware.py,
    ops/observe.py) build their fields only for JSON (~30,000 instructions a line: the fields, and
    the logging module copying each onto the record)."""
    return settings.LLMHUB_LOG_FORMAT == "json"


def _has_marker(text: str) -> bool:
    lowered = text.lower()
    # _MARKERS written out: any() over a generator resumes a frame for each marker (~half the time).
    return (
        "auth" in lowered
        or "key" in lowered
        or "bearer" in lowered
        or "basic" in lowered
        or "token" in lowered
        or "sk-" in lowered
        or "llmh-" in lowered
        or "aiza" in lowered
    )


def redact(text: str) -> str:
    if not _has_marker(text):
        return text
    return _SECRET.sub(_replace, text)


def redact_json(line: str) -> str:
    """redact() for a JSON line: our own fields above are passed over when looking for a marker, so a
    request or run line (which always has them) skips the expression unless something else might
    hold a secret; then the whole line goes through it, those fields too."""
    if not _has_marker(_OWN_FIELDS.sub("", line)):
        return line
    return _SECRET.sub(_replace, line)


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
        kwargs.setdefault("json_ensure_ascii", False)
        super().__init__("{levelname}{name}{message}", style="{", **kwargs)
        # One encoder for every line (json.dumps with a `cls` builds one a call).
        self.encoder = JsonEncoder(default=self.json_default, ensure_ascii=self.json_ensure_ascii)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict) -> None:
        if self.defaults or self.static_fields or self.timestamp or self.rename_fields_keep_missing:
            super().add_fields(log_data, record, message_dict)
        else:
            self._add_record_fields(log_data, record, message_dict)
        # A string, not a datetime: the encoder's slow path for other types is skipped.
        log_data["time"] = datetime.fromtimestamp(record.created, tz=UTC).isoformat()
        log_data["pid"] = record.process  # which server process, when several serve (make serve)
        if "request_id" not in log_data and request_id.get():
            log_data["request_id"] = request_id.get()

    def _add_record_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict
    ) -> None:
        """BaseJsonFormatter.add_fields without defaults, static fields or a timestamp of its own:
        the same fields in the same order, in one loop over the record's attributes (a request or
        run line has ~40) without a function call for each."""
        rename = self.rename_fields
        attributes = record.__dict__
        for field in self._required_fields:
            log_data[rename.get(field, field)] = attributes.get(field)
        for key, value in message_dict.items():
            log_data[rename.get(key, key)] = value
        skip = self._skip_fields
        for key, value in attributes.items():
            if key not in skip and not (isinstance(key, str) and key.startswith("_")):
                log_data[rename.get(key, key)] = value

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        return self.encoder.encode(log_data)

    def format(self, record: logging.LogRecord) -> str:
        return redact_json(super().format(record))
