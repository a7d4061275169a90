"""The output cap of a run, enforced before text reaches anyone, and the charge it bounds.

A run reserves its input estimate plus its cap at the price; `OutputCeiling` makes sure no more
text than the cap is delivered, and `charge()` makes sure no more than that is charged, whatever
the provider reports.
"""

from __future__ import annotations

from dataclasses import dataclass

from providers.base import TokenCount
from usage import tokens

# No token is this long: past (cap + a few) tokens of this many characters, the rest of a piece
# cannot fit, and is never counted (a 1 MiB piece costs as much as its first few kilobytes).
LONGEST_TOKEN_CHARS = 64


@dataclass(frozen=True)
class Limits:
    """What the current attempt reserved: its input estimate and its output cap, in tokens."""

    input_tokens: int
    output_tokens: int


class OutputCeiling:
    """The text delivered so far, kept at or under `cap` tokens by tokens.count_output().

    Each piece is counted on its own against a running total. Counted alone a piece counts high
    ("word " is two tokens alone, one inside a sentence), so when the total nears the cap the whole
    text is counted once, exactly, and the running total restarts from there: a few whole counts
    per run, never one per piece. A piece that would cross the cap is cut at it, token-exactly."""

    def __init__(self, cap: int, model: str, dialect: str) -> None:
        self.cap, self.model, self.dialect = cap, model, dialect
        self.parts: list[str] = []
        self.counted = 0  # tokens of the text: exact after a whole count, at least that between them
        self.exceeded = False  # the provider sent more than the cap; the rest was refused
        self.whole_counts = 0

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def admit(self, piece: str) -> str:
        """The part of `piece` that fits under the cap: all of it, until the cap is reached."""
        if self.exceeded or not piece:
            return ""
        longest = (self.cap + 8) * LONGEST_TOKEN_CHARS
        cut_short = len(piece) > longest
        piece = piece[:longest]
        estimate = self.counted + self._count(piece)
        if estimate <= self.cap and not cut_short:
            self.counted = estimate
            self.parts.append(piece)
            return piece
        before = self.text
        self.whole_counts += 1
        total = self._count(before + piece)
        if total <= self.cap and not cut_short:
            self.counted = total
            self.parts.append(piece)
            return piece
        self.exceeded = True
        fitting = tokens.cut_text(before + piece, self.cap, self.model, self.dialect)
        allowed = fitting[len(before) :] if len(fitting) > len(before) else ""
        if allowed:
            self.parts.append(allowed)
        self.counted = self._count(before + allowed)
        return allowed

    def count(self) -> int:
        """The exact count of the delivered text (a whole count, when the total is an estimate)."""
        return self._count(self.text)

    def billed(self) -> int:
        """What the delivered text is charged as without the provider's own count: our estimate,
        which errs high for other providers' tokenizers, and never more than the cap."""
        return min(tokens.count_text(self.text, self.model, self.dialect), self.cap)

    def _count(self, text: str) -> int:
        return tokens.count_output(text, self.model, self.dialect)


def charge(
    usage: TokenCount | None, delivered: int, limits: Limits, provider: str, input_billed: bool
) -> tuple[TokenCount, str]:
    """The tokens to charge, and a warning when the provider reported more than the reservation
    allows: never more than the input reserved and the cap. Without a report, our own counts."""
    if usage is None:
        return TokenCount(limits.input_tokens if input_billed else 0, delivered), ""
    notes = []
    output = usage.output
    if output > limits.output_tokens:
        notes.append(
            f"{provider} reported {output:,} output tokens, above the cap of {limits.output_tokens:,}"
        )
        output = limits.output_tokens
    input_tokens = usage.input
    if input_tokens > limits.input_tokens:
        notes.append(
            f"{provider} reported {input_tokens:,} input tokens, above the {limits.input_tokens:,} reserved"
        )
        input_tokens = limits.input_tokens
    warning = "; ".join(notes) + "; charged at the cap — check the provider's bill." if notes else ""
    # What the prompt cache read and wrote, and the reasoning, are parts of those counts.
    cache_read = min(usage.cache_read, input_tokens)
    cache_write = min(usage.cache_write, input_tokens - cache_read)
    counted = TokenCount(input_tokens, output, cache_read, cache_write, min(usage.reasoning, output))
    return counted, warning
