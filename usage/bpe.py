"""OpenAI's byte-pair encodings (o200k_base, cl100k_base), run in Python on compact tables.

tiktoken holds an encoding's tokens in Rust hash maps: o200k_base's 200,000 tokens took 41 MB of
every server process that had counted one prompt, a third of the 120 MB a process may hold (issue 16).
Here the tokens sit in a marisa trie (0.5 MB for o200k_base) and their ranks in two arrays (0.8 MB
each), written at set-up from tiktoken's own file (`manage.py install_tokenizers`, usage/tokens.py).

The tokens are tiktoken's, to the token: a text is split into pieces by the encoding's own pattern
(the `regex` module, which has the `\\p{...}` classes; Python's `re`, about twice as fast, for a text
that is all ASCII, with classes written out that agree with them there), a piece that is a token is
that token, and any other piece is merged pair by pair as tiktoken merges it: the adjacent pair whose
joined bytes have the lowest rank first, the leftmost on a tie. A heap keeps that O(n log n) in the
piece's length, so a long word is no trap. tests/usage/test_bpe.py compares both with tiktoken.

What it costs: 1.0-1.5 times tiktoken's time on English prose and code, whose words recur (the
tokens of recent pieces are kept), ~5.5 times on text with characters beyond ASCII (the regex
module's split, during which other threads run), Chinese as fast; the interpreter's lock is held
for the rest, where tiktoken let it go. A long text's count is kept too, for the conversation a
program sends again with each turn.
"""

from __future__ import annotations

import array
import functools
import hashlib
import heapq
import re
from collections.abc import Iterable
from itertools import chain
from pathlib import Path

import marisa_trie
import regex

# tiktoken's patterns (tiktoken_ext/openai_public.py; a test compares them), cl100k_base's `$` as `\Z`:
# Python's `$` would also match before a last newline, Rust's only at the end.
_LETTERS = r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]"
_LOWER = r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]"
_CONTRACTION = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
PATTERNS = {
    "o200k_base": "|".join(
        [
            rf"[^\r\n\p{{L}}\p{{N}}]?{_LETTERS}*{_LOWER}+{_CONTRACTION}",
            rf"[^\r\n\p{{L}}\p{{N}}]?{_LETTERS}+{_LOWER}*{_CONTRACTION}",
            r"\p{N}{1,3}",
            r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
            r"\s*[\r\n]+",
            r"\s+(?!\S)",
            r"\s+",
        ]
    ),
    "cl100k_base": r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+"
    r"| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++\Z|\s*[\r\n]|\s+(?!\S)|\s",
}
# On ASCII text: the letters are A-Z and a-z (upper case Lu, lower case Ll; no ASCII character is Lt,
# Lm, Lo or M), the numbers 0-9, and re.ASCII's \s is Unicode's White_Space there (tab to return, space).
_ASCII_CLASSES = {
    r"[^\r\n\p{L}\p{N}]": r"[^\r\nA-Za-z0-9]",
    r"[^\s\p{L}\p{N}]": r"[^\sA-Za-z0-9]",
    _LETTERS: "[A-Z]",
    _LOWER: "[a-z]",
    r"\p{L}": "[A-Za-z]",
    r"\p{N}": "[0-9]",
}


# Characters that the regex module (Unicode 17) has as letters, marks or numbers, and tiktoken's Rust
# regex (Unicode 16) as not assigned yet: in a text, each is split as a private-use character, which
# none of the patterns' classes takes either, as tiktoken splits it. tests/usage/test_bpe.py finds
# this list again from both libraries, every code point in turn.
NEWER_THAN_TIKTOKEN = regex.compile(
    "["
    r"\u0558\u058b-\u058c\u05c8-\u05c9\u088f\u0b53-\u0b54\u0c5c\u0cdc\u1acf-\u1af0\u208f"
    r"\u209d-\u209f\ua7ce-\ua7cf\ua7d2\ua7d4\ua7dd\ua7e2\ua7f1\uab6c-\uab6d"
    r"\U000107bb-\U000107bf\U00010940-\U00010959\U00010ec5-\U00010ec7\U00010ecb-\U00010ecf"
    r"\U00010ed9-\U00010eee\U00010ef0-\U00010efb\U00011b0a\U00011b60-\U00011b67"
    r"\U00011db0-\U00011ddb\U00011de0-\U00011de9\U00011df0-\U00011df1\U0001246f"
    r"\U00012475-\U0001247f\U00012550-\U00012686\U00016ea0-\U00016eb8\U00016ebb-\U00016ed3"
    r"\U00016ff2-\U00016ff6\U000187f8-\U000187ff\U00018cd6-\U00018cda\U00018d09-\U00018d20"
    r"\U00018d80-\U00018df2\U00018e00-\U00019191\U000191a0-\U000191d2\U0001b123-\U0001b128"
    r"\U0001b168\U0001d127-\U0001d128\U0001d250-\U0001d252\U0001d25b-\U0001d25c\U0001d25f"
    r"\U0001d280-\U0001d281\U0001d6a6\U0001df1f-\U0001df24\U0001df2b-\U0001df81"
    r"\U0001df90-\U0001df96\U0001dfcd-\U0001dfff\U0001e6c0-\U0001e6de\U0001e6e0-\U0001e6f5"
    r"\U0001e6fe-\U0001e6ff\U0002b73a-\U0002b73f\U0002b81e\U0002cea2-\U0002cead"
    r"\U000323b0-\U00033479\U0003d000-\U0003fc3f"
    "]"
)
STAND_IN = "\ue000"
# The tokens of this many pieces are kept (most recently used): the words of a language recur, and a
# piece found here costs no encoding, look-up nor merge (~2 MB when full). Only pieces this short:
# a request's one-word megabyte, or thousands of them, is not kept.
PIECES_KEPT = 8192
PIECE_KEPT_CHARS = 64
# Counts kept of texts this long or longer, by digest (emptied when full: ~0.5 MB at most).
LONG_TEXT_CHARS = 2048
LONG_TEXTS_KEPT = 4096


def ascii_pattern(pattern: str) -> str:
    for unicode, ascii in _ASCII_CLASSES.items():
        pattern = pattern.replace(unicode, ascii)
    if r"\p" in pattern:
        raise ValueError(f"A class is left without its ASCII form: {pattern}")
    return pattern


def table_paths(folder: Path, name: str) -> tuple[Path, Path]:
    """The trie of an encoding's tokens and its ranks (4-byte integers: the rank of each trie key
    id, then the trie key id of each rank)."""
    return folder / f"{name}.marisa", folder / f"{name}.ranks"


def write_tables(folder: Path, name: str, ranks: dict[bytes, int]) -> None:
    """The tables of an encoding whose ranks are 0 to len(ranks) - 1."""
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise ValueError(f"The ranks of {name} are not 0 to {len(ranks) - 1}, each once.")
    trie = marisa_trie.BinaryTrie(ranks)
    rank_of = array.array("I", bytes(4 * len(ranks)))
    key_of = array.array("I", bytes(4 * len(ranks)))
    for token, rank in ranks.items():
        key = trie.key_id(token)
        rank_of[key], key_of[rank] = rank, key
    trie_path, ranks_path = table_paths(folder, name)
    trie.save(str(trie_path))
    ranks_path.write_bytes(rank_of.tobytes() + key_of.tobytes())


class Encoding:
    """encode / decode_bytes / count, as tiktoken's Encoding (encode_ordinary: special tokens are
    text like any other)."""

    def __init__(self, name: str, folder: Path) -> None:
        self.name = name
        trie_path, ranks_path = table_paths(folder, name)
        self._trie = marisa_trie.BinaryTrie()
        self._trie.load(str(trie_path))
        both = array.array("I")
        both.frombytes(ranks_path.read_bytes())
        size = len(self._trie)
        if len(both) != 2 * size:
            raise ValueError(f"{ranks_path} does not hold the ranks of {trie_path}'s {size} tokens.")
        self._rank_of, self._key_of = both[:size], both[size:]
        self._pattern = regex.compile(PATTERNS[name])
        self._ascii_pattern = re.compile(ascii_pattern(PATTERNS[name]), re.ASCII)
        # Each Encoding its own memory of pieces' tokens (a method's lru_cache would share one).
        self._kept = functools.lru_cache(maxsize=PIECES_KEPT)(self._piece_tokens)
        self._long_counts: dict[bytes, int] = {}

    def pieces(self, text: str) -> list[str]:
        """The text split as tiktoken splits it before merging."""
        if text.isascii():
            return self._ascii_pattern.findall(text)
        # regex lets other threads run while it splits (`concurrent`: measured at no cost), most of
        # the time such a text takes. (`re`, for ASCII, holds the lock, but takes ~0.4 of the time.)
        if not NEWER_THAN_TIKTOKEN.search(text):
            return self._pattern.findall(text, concurrent=True)
        # Split a copy whose newer characters are stand-ins (one character for one: the same places).
        copy = NEWER_THAN_TIKTOKEN.sub(STAND_IN, text)
        matches = self._pattern.finditer(copy, concurrent=True)
        return [text[match.start() : match.end()] for match in matches]

    def encode(self, text: str) -> list[int]:
        try:
            return list(chain.from_iterable(map(self._tokens, self.pieces(text))))
        except UnicodeEncodeError:  # a lone surrogate (JSON's "\ud800"): tiktoken encodes it as U+FFFD
            return self.encode(_without_surrogates(text))

    def count(self, text: str) -> int:
        """len(encode(text)), without the list. A long text's count is kept, by a digest of it (the
        text itself is not held): a program sends its conversation again with each turn, and a turn
        then counts only what it adds."""
        if len(text) < LONG_TEXT_CHARS:
            return self._count(text)
        digest = hashlib.blake2b(text.encode(errors="surrogatepass"), digest_size=16).digest()
        counted = self._long_counts.get(digest)
        if counted is None:
            counted = self._count(text)
            if len(self._long_counts) >= LONG_TEXTS_KEPT:
                self._long_counts.clear()
            self._long_counts[digest] = counted
        return counted

    def _count(self, text: str) -> int:
        try:
            return sum(map(len, map(self._tokens, self.pieces(text))))
        except UnicodeEncodeError:
            return self._count(_without_surrogates(text))

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        restore, key_of = self._trie.restore_key, self._key_of
        return b"".join(restore(key_of[rank]) for rank in ids)

    def _tokens(self, piece: str) -> tuple[int, ...]:
        return self._kept(piece) if len(piece) <= PIECE_KEPT_CHARS else self._piece_tokens(piece)

    def _piece_tokens(self, piece: str) -> tuple[int, ...]:
        data = piece.encode()
        key = self._trie.get(data)
        return (self._rank_of[key],) if key is not None else self._merge(data)

    def _merge(self, piece: bytes) -> tuple[int, ...]:
        """The ranks of a piece that is not a token, merged from its bytes as tiktoken merges."""
        size = len(piece)
        key_id, rank_of = self._trie.get, self._rank_of

        def rank(start: int, stop: int) -> int | None:
            key = key_id(piece[start:stop])
            return None if key is None else rank_of[key]

        # The parts, by their start: end[i] is where the part starting at i ends (while i starts
        # one), before[i] where the part before it starts (-1 for the first).
        end = list(range(1, size + 1))
        before = list(range(-1, size - 1))
        # Candidate merges (rank of the joined bytes, left part's start, right part's end); one
        # whose parts have changed since it was pushed is skipped when it comes up.
        heap = [(r, i, i + 2) for i in range(size - 1) if (r := rank(i, i + 2)) is not None]
        heapq.heapify(heap)
        while heap:
            _, left, stop = heapq.heappop(heap)
            right = end[left]
            if right == 0 or right >= size or end[right] != stop:
                continue
            end[left], end[right] = stop, 0  # 0: `right` starts no part any more
            if stop < size:
                before[stop] = left
                if (r := rank(left, end[stop])) is not None:
                    heapq.heappush(heap, (r, left, end[stop]))
            if (previous := before[left]) >= 0 and (r := rank(previous, stop)) is not None:
                heapq.heappush(heap, (r, previous, stop))
        ranks = []
        start = 0
        while start < size:
            ranks.append(rank(start, end[start]))
            start = end[start]
        return tuple(ranks)


def _without_surrogates(text: str) -> str:
    """The text with each lone surrogate as U+FFFD, as tiktoken's encode() makes it."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
