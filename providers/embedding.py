"""Embeddings: what a program asks to have embedded, and the vectors a provider answers with.

An adapter that embeds implements `ProviderAdapter.embed()` and names in `embedding_inputs` what it
takes: "text" (strings) and, for OpenAI's wire format only, "tokens" (arrays of token ids).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from providers.base import reported_tokens
from providers.errors import UnexpectedResponse

TEXT, TOKENS = "text", "tokens"
# How each kind of input is named when a provider refuses it.
INPUT_NAMES = {TEXT: "input as text", TOKENS: "input as token arrays"}


@dataclass(frozen=True)
class EmbeddingRequest:
    model: str
    inputs: tuple[str, ...] | tuple[tuple[int, ...], ...]
    dimensions: int | None = None

    @property
    def kind(self) -> str:
        return TOKENS if self.inputs and not isinstance(self.inputs[0], str) else TEXT

    def wire_inputs(self) -> list:
        return [item if isinstance(item, str) else list(item) for item in self.inputs]


@dataclass(frozen=True)
class Embeddings:
    vectors: tuple[tuple[float, ...], ...]  # one per input, in the order of the inputs
    input_tokens: int | None  # None: the provider does not report a count (Gemini)


def vectors(provider: str, raw: Sequence[Any], expected: int) -> tuple[tuple[float, ...], ...]:
    """The vectors of an answer, checked: one list of numbers per input, all of one length; any
    other shape is an UnexpectedResponse (never a vector of the wrong size handed on)."""

    def problem(text: str) -> UnexpectedResponse:
        return UnexpectedResponse(provider, 200, problem=text)

    if not isinstance(raw, list) or len(raw) != expected:
        count = len(raw) if isinstance(raw, list) else "no"
        raise problem(f"it answered {count} embeddings for {expected} inputs")
    checked = []
    for vector in raw:
        if not isinstance(vector, list) or not vector:
            raise problem("an embedding was not a list of numbers")
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in vector):
            raise problem("an embedding held something other than numbers")
        checked.append(tuple(float(x) for x in vector))
    if len({len(vector) for vector in checked}) > 1:
        raise problem("its embeddings were not all of one length")
    return tuple(checked)


def input_tokens(provider: str, value: Any) -> int | None:
    return None if value is None else reported_tokens(provider, "prompt_tokens", value)
