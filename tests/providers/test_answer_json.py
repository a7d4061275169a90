"""How the hub reads a provider's JSON (providers/http.py parse_json, orjson first): the values
json.loads gives, on the odd inputs where the two parsers could differ, and json's refusal."""

from __future__ import annotations

import json
import math
import random

import pytest

from providers.errors import UnexpectedResponse
from providers.http import ProviderHTTP

ODD = [
    "18446744073709551615",  # the largest 64-bit unsigned integer: orjson's own
    "18446744073709551616",  # one more: orjson would give a float
    "-9223372036854775809",
    '{"usage": {"prompt_tokens": 123456789012345678901234567890}}',
    "NaN",
    '{"a": Infinity, "b": -Infinity}',
    '{"a": 1, "a": 2}',  # a duplicate key: the last one
    '"\\ud800"',  # an escaped lone surrogate
    '"\\ud83d\\ude00"',
    "1e400",
    "-0.0",
    "2.2250738585072011e-308",
    "0.30000000000000004",
    ' {"a": "é中😀"} \n',
    '{"id": "1234567890123456789012345"}',  # a long number in a string: json's turn, same value
]


def parser() -> ProviderHTTP:
    return ProviderHTTP("Test", "http://127.0.0.1:9", {}, [], lambda *_: None, timeout=5)


def same(a, b) -> bool:
    """Equal values of the same types; NaN equals NaN and -0.0 is not 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[key], b[key]) for key in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("text", ODD)
def test_odd_json_reads_as_json_loads_reads_it(text):
    assert same(parser().parse_json(text), json.loads(text))


def test_numbers_and_strings_read_as_json_loads_reads_them():
    rng = random.Random(16)
    http = parser()
    for _ in range(5000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 24))).lstrip("0") or "0"
        number = digits + rng.choice(["", "." + str(rng.randint(0, 10**12)), f"e{rng.randint(-330, 330)}"])
        text = "".join(chr(rng.randint(0, 0x10FFFF)) for _ in range(rng.randint(0, 6)))
        document = f'{{"n": {number}, "s": {json.dumps(text, ensure_ascii=rng.random() < 0.5)}}}'
        assert same(http.parse_json(document), json.loads(document)), document


@pytest.mark.parametrize("text", ["", "{", '{"a": 1} x', "[1,]", "'a'", '"\n"'])
def test_what_json_refuses_is_an_unexpected_response(text):
    with pytest.raises(UnexpectedResponse, match="not valid JSON"):
        parser().parse_json(text, 200)
