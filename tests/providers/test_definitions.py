from __future__ import annotations

from decimal import Decimal

import pytest

from providers.definitions import BUILTIN_FILE, DefinitionError, load_file, parse

DIALECTS = {"openai", "anthropic", "gemini", "ollama", "azure"}

GROQ = """\
[[providers]]
id = "groq"
name = "Groq"
dialect = "openai"
endpoint = "https://api.groq.com/openai/v1"
api_key_env = "GROQ_API_KEY"

[[providers.models]]
id = "llama-3.3-70b-versatile"
context_window = 131072
max_output = 32768
input_per_1m = "0.59"
output_per_1m = "0.79"
"""


def test_the_builtin_file_defines_openai_and_anthropic_with_their_defaults():
    definitions = {d.id: d for d in load_file(BUILTIN_FILE, DIALECTS)}
    assert definitions["openai"].default_model == "gpt-4o"
    assert definitions["anthropic"].default_model == "claude-sonnet-4-5"
    assert [m.info.id for m in definitions["anthropic"].models] == [
        "claude-sonnet-4-5",
        "claude-opus-4-5",
        "claude-haiku-4-5",
    ]


def test_it_reads_a_declarative_provider_with_decimal_prices():
    (groq,) = parse(GROQ, source="providers.toml", dialects=DIALECTS)
    model = groq.models[0]
    assert (groq.id, groq.dialect, groq.api_key_env) == ("groq", "openai", "GROQ_API_KEY")
    assert model.info.input_per_1m == Decimal("0.59") and model.price_given


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('dialect = "openai"', 'dialect = "openapi"'),
            "providers.toml:4: providers[1] \"groq\": dialect 'openapi' is not one of anthropic, azure, gemini, ollama, openai",
        ),
        (
            ('input_per_1m = "0.59"', "input_per_1m = 0.59"),
            'providers.toml:12: providers[1] "groq" models[1]: input_per_1m must be a string such as "0.59"',
        ),
        (
            ("context_window = 131072", 'context_window = "big"'),
            'providers.toml:10: providers[1] "groq" models[1]: context_window must be a positive whole number',
        ),
        (
            ('api_key_env = "GROQ_API_KEY"', 'api_key = "gsk_live_secret"'),
            "providers.toml:6: providers[1] \"groq\": unknown field 'api_key'",
        ),
        (
            ('endpoint = "https://api.groq.com/openai/v1"', 'endpoint = "api.groq.com"'),
            "providers.toml:5: providers[1] \"groq\": endpoint 'api.groq.com' is not an http(s) URL",
        ),
        (
            ('id = "groq"', 'id = "Groq Cloud"'),
            "providers.toml:2: providers[1] \"Groq Cloud\": id 'Groq Cloud' is not valid",
        ),
        (('output_per_1m = "0.79"\n', ""), "give both input_per_1m and output_per_1m"),
        (('name = "Groq"', 'name = "Groq'), "providers.toml:3: "),
    ],
)
def test_it_names_the_file_line_and_field_of_a_mistake(change, message):
    text = GROQ.replace(*change)
    with pytest.raises(DefinitionError) as caught:
        parse(text, source="providers.toml", dialects=DIALECTS)
    assert message in str(caught.value)


def test_it_refuses_a_provider_defined_twice():
    with pytest.raises(DefinitionError, match="'groq' is defined twice"):
        parse(GROQ + "\n" + GROQ.split("[[providers.models]]")[0], source="p.toml", dialects=DIALECTS)


def test_it_refuses_a_default_model_it_does_not_list():
    text = GROQ.replace('api_key_env = "GROQ_API_KEY"', 'default_model = "llama-4"')
    with pytest.raises(DefinitionError, match="default_model 'llama-4' is not listed"):
        parse(text, source="p.toml", dialects=DIALECTS)


def test_it_says_which_file_it_could_not_read(tmp_path):
    with pytest.raises(DefinitionError, match="missing.toml: cannot read"):
        load_file(tmp_path / "missing.toml", DIALECTS)
