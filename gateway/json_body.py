"""Reading a JSON request body of the API without letting it break what comes after.

Python's parser accepts what the rest of the hub cannot handle: a lone surrogate ("\\ud800") fails
when the text is encoded for the database or a provider, NUL is refused by PostgreSQL's text and
jsonb columns, NaN is not JSON and 1e400 is read as infinity, a 5,000-digit number and 100,000
nested arrays raise errors that are not JSON errors. Each becomes a BadBody naming the problem,
which the API answers as a 400.

A body is read by orjson (a fifth of the standard parser's instructions, which makes a decoder for
each body), and read again by the standard parser when orjson refuses it or the checks find a
problem (the standard parser's messages name it, as they always have), or when it holds a float that
may be an integer beyond 64 bits (orjson reads one as a float, the standard parser as an int).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

# Deeper than any chat request needs (messages[0].content[0].text is four levels).
MAX_DEPTH = 32
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# orjson reads an integer below -2**63 or above 2**64 - 1 as a float; the standard parser, as an int.
_BEYOND_64_BITS = float(2**63)


class BadBody(ValueError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def load(body: bytes) -> Any:
    """The parsed body, or BadBody."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _load_standard(body)  # refused: the standard parser says why, as it always has
    if _suspect(data, escaped=b"\\u" in body, read_by_orjson=True):
        return _load_standard(body)
    return data


def _load_standard(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadBody(f"The request body is not valid UTF-8 (byte {error.start}).") from None
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except BadBody:
        raise
    except RecursionError:
        raise BadBody(f"The request body is nested too deeply (at most {MAX_DEPTH} levels).") from None
    except json.JSONDecodeError as error:
        raise BadBody(f"The request body is not valid JSON: {error}.") from None
    except ValueError:
        # int() refuses more than 4,300 digits (sys.get_int_max_str_digits).
        raise BadBody("A number in the request body is too long.") from None
    # Parsed text holds NUL or a surrogate only from a \\u escape: literal ones are refused by the
    # parser (a control character) and by the UTF-8 decoder (a surrogate).
    if _suspect(data, escaped="\\u" in text):
        _check(data)  # names the problem, and where it is
    return data


def _no_constant(name: str) -> Any:
    raise BadBody(f"{name} is not valid JSON: send numbers as numbers.")


def _finite_float(text: str) -> float:
    # 1e400 is read as infinity, which no JSON can carry on to a provider or the database.
    number = float(text)
    if math.isinf(number):
        raise BadBody(f"A number in the request body is too large: {text[:40]}.")
    return number


def _suspect(data: Any, escaped: bool, read_by_orjson: bool = False) -> bool:
    """Whether _check would find a problem, or, in what orjson read, a float may be an integer beyond
    64 bits: the same walk, a level at a time, without the paths it names (built for every value,
    they were most of its cost), nor the text checks when the body has no \\u escape."""
    level = [data]
    for _ in range(MAX_DEPTH):
        below = []
        for value in level:
            if isinstance(value, str):
                if escaped and _UNSTORABLE.search(value):
                    return True
            elif isinstance(value, dict):
                if escaped and any(_UNSTORABLE.search(name) for name in value):
                    return True
                below.extend(value.values())
            elif isinstance(value, list):
                below.extend(value)
            elif read_by_orjson and isinstance(value, float) and abs(value) >= _BEYOND_64_BITS:
                return True
        if not below:
            return False
        level = below
    return True  # a value deeper than MAX_DEPTH


def _check(data: Any) -> None:
    """Walk the parsed value without recursion: depth, and text the hub could not store or send."""
    pending = [(data, 1, "")]
    while pending:
        value, depth, path = pending.pop()
        if depth > MAX_DEPTH:
            raise BadBody(
                f"The request body is nested too deeply (at most {MAX_DEPTH} levels).", path or None
            )
        if isinstance(value, str):
            _check_text(value, path)
        elif isinstance(value, dict):
            for name, item in value.items():
                _check_text(name, path)
                pending.append((item, depth + 1, f"{path}.{name}" if path else name))
        elif isinstance(value, list):
            pending.extend((item, depth + 1, f"{path}[{index}]") for index, item in enumerate(value))


def _check_text(text: str, path: str) -> None:
    found = _UNSTORABLE.search(text)
    if found is None:
        return
    where = f"{path} contains" if path else "The request body contains"
    if found.group() == "\x00":
        raise BadBody(f"{where} a NUL character (\\u0000), which the hub cannot store.", path or None)
    raise BadBody(
        f"{where} a lone surrogate (\\u{ord(found.group()):04x}): text must be valid Unicode.", path or None
    )
