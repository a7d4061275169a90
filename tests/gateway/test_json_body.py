"""gateway.json_body: a body's problems are found as the full walk finds them, whichever way it is
written (the walk that names them runs only when the quick one finds one)."""

from __future__ import annotations

import json
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
