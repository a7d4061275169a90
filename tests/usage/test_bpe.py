"""usage/bpe.py gives tiktoken's tokens, to the token: on real files, on odd text, on every code
point, and on words no token covers, without tiktoken's 41 MB (issue 16)."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
import tiktoken

from usage import bpe, tokens

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["o200k_base", "cl100k_base"]
# The code-point sweeps use no database: run in the first (SQLite) pass only.
FIRST_PASS_ONLY = pytest.mark.skipif("DATABASE_URL" in os.environ, reason="the SQLite pass runs it")


def tiktokens(name: str) -> tiktoken.Encoding:
    return tiktoken.get_encoding(name)  # reads the file `make` installed (TIKTOKEN_CACHE_DIR)


@pytest.mark.parametrize("name", NAMES)
def test_the_patterns_are_tiktokens(name):
    theirs = tiktokens(name)._pat_str
    # cl100k_base ends a text's trailing spaces with `$`, which in Python also matches before a last
    # newline; `\Z` matches only at the end, as Rust's `$` does.
    assert bpe.PATTERNS[name] == theirs.replace(r"\s++$", r"\s++\Z")


@pytest.mark.parametrize("name", NAMES)
def test_the_projects_own_files_encode_as_tiktoken_encodes_them(name):
    ours, theirs = tokens.encoding(name), tiktokens(name)
    files = sorted(ROOT.glob("*.md")) + sorted((ROOT / "usage").glob("*.py"))
    files += sorted((ROOT / "templates").rglob("*.html"))[:20]
    assert len(files) > 30
    for path in files:
        text = path.read_text()
        assert ours.encode(text) == theirs.encode_ordinary(text), path
        assert ours.count(text) == len(theirs.encode_ordinary(text)), path


# Whitespace Python's str.isspace() has and Unicode's White_Space has not (\x1c-\x1f), and the
# other way round (\x85 is both), letters whose case folds oddly (ſ, the Kelvin sign), combining
# marks, digits of other scripts, emoji with a skin tone, CJK, the line and paragraph separators,
# lone surrogates (JSON's "\ud800" decodes to one; tiktoken encodes it as U+FFFD).
ODD = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0aZ09'sStTlLdDmMvVrReE\u017f\u212a.,/-\u00e9\u0301\u4e2d"
ODD += "\U0001f600\U0001f3fd\u2028\u2029\u3000\u0660\u00bd\ue000\u0558\ud800\udfff"


@pytest.mark.parametrize("name", NAMES)
def test_odd_and_random_text_encodes_as_tiktoken_encodes_it(name):
    ours, theirs = tokens.encoding(name), tiktokens(name)
    rnd = random.Random(16)
    texts = ["".join(rnd.choice(ODD) for _ in range(rnd.randint(1, 40))) for _ in range(6000)]
    # All-ASCII texts take re's pattern, the others regex's: both against tiktoken.
    texts += ["".join(chr(rnd.randint(0, 127)) for _ in range(rnd.randint(1, 60))) for _ in range(3000)]
    texts += [tokens.CHECK_SAMPLE, "<|endoftext|> <|fim_prefix|>", "", " ", "\n\n\n  \n", "x  \n"]
    for text in texts:
        assert ours.encode(text) == theirs.encode_ordinary(text), repr(text)
        assert ours.count(text) == len(theirs.encode_ordinary(text)), repr(text)


@FIRST_PASS_ONLY
@pytest.mark.parametrize(
    ("name", "context"),
    [
        # A letter or mark glues to the x and takes the 's; anything else glues to the apostrophe.
        ("o200k_base", "x{c}'s\n"),
        ("cl100k_base", "x{c}'s\n"),
        # A space, a digit or a letter each split "  y" otherwise.
        ("o200k_base", " {c}{c}y\n"),
    ],
)
def test_every_code_point_splits_as_in_tiktoken(name, context):
    """What decides a split is which class a character is in (letter, upper or lower case, mark,
    number, space): a character the regex module's Unicode puts in another class than tiktoken's
    does gives other tokens here. Fails on an upgrade of either that changes a class, naming the
    first character that differs (bpe.NEWER_THAN_TIKTOKEN lists those known)."""
    ours, theirs = tokens.encoding(name), tiktokens(name)
    points = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for start in range(0, len(points), 65536):
        block = points[start : start + 65536]
        text = "".join(context.format(c=c) for c in block)
        if ours.encode(text) != theirs.encode_ordinary(text):
            first = next(
                c
                for c in block
                if ours.encode(context.format(c=c)) != theirs.encode_ordinary(context.format(c=c))
            )
            pytest.fail(f"U+{ord(first):04X} splits otherwise than in tiktoken ({context!r})")


@pytest.mark.parametrize("name", NAMES)
def test_a_long_word_no_token_covers_is_merged_in_time(name):
    """A piece is merged with a heap, not by scanning it after each merge: a 100,000-letter word
    (a DNA sequence, a hostile prompt) takes a fraction of a second, not hours."""
    ours, theirs = tokens.encoding(name), tiktokens(name)
    rnd = random.Random(3)
    for word in ["a" * 100_000, "".join(rnd.choice("ACGT") for _ in range(100_000)), "-" * 50_000]:
        started = time.process_time()
        counted = ours.encode(word)
        assert time.process_time() - started < 5
        assert counted == theirs.encode_ordinary(word)
    # A long piece is not kept: a client sending many would otherwise fill memory with them.
    kept = ours._kept.cache_info().currsize
    ours.count("b" * 10_000)
    assert ours._kept.cache_info().currsize == kept


def test_the_ascii_patterns_have_no_unicode_class_left():
    for name in NAMES:
        assert r"\p" not in bpe.ascii_pattern(bpe.PATTERNS[name])
    with pytest.raises(ValueError, match="without its ASCII form"):
        bpe.ascii_pattern(r"\p{Lu}+")


def test_tables_that_do_not_belong_together_are_refused(tmp_path):
    bpe.write_tables(tmp_path, "o200k_base", {b"a": 0, b"b": 1, b"ab": 2})
    trie, ranks = bpe.table_paths(tmp_path, "o200k_base")
    assert bpe.Encoding("o200k_base", tmp_path).encode("abba") == [2, 1, 0]
    ranks.write_bytes(ranks.read_bytes()[:-4])
    with pytest.raises(ValueError, match="does not hold the ranks"):
        bpe.Encoding("o200k_base", tmp_path)
    with pytest.raises(ValueError, match="not 0 to 1"):
        bpe.write_tables(tmp_path, "o200k_base", {b"a": 0, b"b": 2})


def test_a_long_message_sent_again_is_not_counted_again():
    """Programs send their whole conversation with each turn: a long text's count is kept."""
    ours = tokens.encoding("o200k_base")
    long = (ROOT / "README.md").read_text()[:60_000]
    assert len(long) > bpe.LONG_TEXT_CHARS and not long.isascii()  # the slower path, as most text
    started = time.process_time()
    first = ours.count(long)
    first_time = time.process_time() - started
    started = time.process_time()
    again = [ours.count(long) for _ in range(10)]
    assert time.process_time() - started < first_time  # ten again in less than the first once
    assert again == [first] * 10 == [len(tiktokens("o200k_base").encode_ordinary(long))] * 10
    assert ours.count(long + " more") == len(tiktokens("o200k_base").encode_ordinary(long + " more"))
