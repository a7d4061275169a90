"""gateway.json_body: a body's problems are found as the full walk finds them, whichever way it is
written (the walk that names them runs only when the quick one finds one)."""

from __future__ import annotations

import json
import math
import random

import pytest

from gateway import json_body

# Ordinary characters, the ones the hub refuses, and the ones that make up a \u escape.
CHARACTERS = ["a", "é", "\x00", "\ud800", "\udfff", "\\", "u", '"']


def _text(chance: random.Random) -> str:
    return "".join(chance.choice(CHARACTERS) for _ in range(chance.randrange(4)))


def _value(chance: random.Random, depth: int = 0):
    kind = chance.randrange(5 if depth < 4 else 3)
    if kind == 0:
        return chance.choice([None, True, 1, 2.5])
    if kind in (1, 2):
        return _text(chance)
    if kind == 3:
        return [_value(chance, depth + 1) for _ in range(chance.randrange(4))]
    return {_text(chance): _value(chance, depth + 1) for _ in range(chance.randrange(4))}


def _refusal(action) -> str | None:
    try:
        action()
    except json_body.BadBody as error:
        return f"{error} @ {error.param}"
    return None


def test_a_body_is_refused_exactly_as_the_full_walk_refuses_it():
    chance = random.Random(16)
    refused = 0
    for _ in range(3000):
        value = _value(chance)
        for _ in range(chance.choice([0, 0, 30, 31, 40])):
            value = [value]
        text = json.dumps(value, ensure_ascii=chance.random() < 0.5)
        try:
            body = text.encode("utf-8")
        except UnicodeEncodeError:  # a surrogate written as itself: not UTF-8, refused before parsing
            continue
        parsed = json.loads(text)  # (an escaped surrogate pair reads back as one character)
        found = _refusal(lambda: json_body._check(parsed))  # noqa: B023 - called at once
        assert _refusal(lambda: json_body.load(body)) == found  # noqa: B023 - called at once
        refused += found is not None
    assert 300 < refused < 2700  # both kinds of body were tried


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b'{"a": "x\\u0000"}', "a contains a NUL character"),
        (b'{"\\ud800": 1}', "The request body contains a lone surrogate"),
        (b"[" * 40 + b"]" * 40, "nested too deeply"),
    ],
)
def test_each_problem_is_named(body, named):
    with pytest.raises(json_body.BadBody, match=named):
        json_body.load(body)


# Bodies orjson reads otherwise than the standard parser, or refuses: each is read as the standard
# parser reads it (json_body.load reads with orjson first).
ODD_BODIES = [
    b'{"seed": 18446744073709551615}',  # the largest integer orjson reads as one
    b'{"seed": 18446744073709551616}',
    b'{"seed": -9223372036854775809}',
    b'{"seed": 123456789012345678901234567890, "n": [1e19, -1e19]}',
    b'{"a": 1, "b": 2, "a": 3}',
    b'{"a": [0.1, 1e-7, 5e-324, 2.5e-324, 1.7976931348623157e308, 9007199254740993.0, -0.0, -0]}',
    b'{"a": 1.0000000000000001110223024625156540423631668090820312500001}',
    '{"é": "é😀", "b": "\\u00e9\\ud83d\\ude00"}'.encode(),
    b'["\\/", "\\"", "\\t", 1, true, null]',
]


@pytest.mark.parametrize("body", ODD_BODIES)
def test_a_body_is_read_as_the_standard_parser_reads_it(body):
    read, expected = json_body.load(body), json.loads(body.decode())
    assert read == expected
    assert repr(read) == repr(expected)  # the same types too: 1 is not 1.0, -0.0 is not 0.0
    assert list(read) == list(expected) if isinstance(read, dict) else True


@pytest.mark.parametrize(
    ("body", "says", "param"),
    [
        (b'{"t": NaN}', "NaN is not valid JSON: send numbers as numbers.", None),
        (b'{"t": -Infinity}', "-Infinity is not valid JSON: send numbers as numbers.", None),
        (b'{"max_tokens": 1e400}', "A number in the request body is too large: 1e400.", None),
        (b'{"a": 1,}', "The request body is not valid JSON: Expecting property name enclosed", None),
        (b"\xef\xbb\xbf{}", "The request body is not valid JSON: Unexpected UTF-8 BOM", None),
        (b'{"a": "\xc3"}', "The request body is not valid UTF-8 (byte 7).", None),
        (b'{"a": ["\\udc00"]}', "a[0] contains a lone surrogate (\\udc00)", "a[0]"),
        (b'{"a": 1' + b"0" * 5000 + b"}", "A number in the request body is too long.", None),
        (b"[" * 2000 + b"]" * 2000, "The request body is nested too deeply (at most 32 levels).", None),
    ],
)
def test_a_refused_body_is_named_as_the_standard_parser_names_it(body, says, param):
    with pytest.raises(json_body.BadBody) as refused:
        json_body.load(body)
    assert str(refused.value).startswith(says)
    assert refused.value.param == param


def test_numbers_are_read_as_the_standard_parser_reads_them():
    chance = random.Random(24)
    for _ in range(2000):
        digits = "".join(chance.choice("0123456789") for _ in range(chance.randrange(1, 26)))
        number = chance.choice(["", "-"]) + (digits.lstrip("0") or "0")
        if chance.random() < 0.5:
            number += "." + digits[: chance.randrange(1, 20)]
        if chance.random() < 0.3:
            number += f"e{chance.randrange(-330, 330)}"
        body = f'{{"n": [{number}]}}'.encode()
        expected = json.loads(body)
        if math.isinf(expected["n"][0]):  # beyond a double: refused, never read as infinity
            with pytest.raises(json_body.BadBody, match="too large"):
                json_body.load(body)
            continue
        assert repr(json_body.load(body)) == repr(expected), body
