"""What an operator follows: the README's "Running LLMHub for a team" names things that exist, and
the Python snippets of "Using the hub from…" run, as written, against a live hub."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
SECTION = README.split("## Running LLMHub for a team", 1)[1].split("\n## ", 1)[0]
CLIENTS = README.split("## Using the hub from…", 1)[1].split("\n## ", 1)[0]


def test_every_command_and_file_it_names_exists():
    from django.core.management import get_commands

    for command in set(re.findall(r"manage\.py (\w+)", SECTION)):
        assert command in get_commands(), f"no command {command}"
    for path in set(re.findall(r"\]\(((?:docs)/[\w/.-]+)\)", SECTION)):
        assert (ROOT / path).exists(), f"the README names {path}, which does not exist"


def test_every_metric_it_names_is_one_llmhub_defines():
    from ops import metrics

    defined = (ROOT / "ops" / "metrics.py").read_text()
    for name in set(re.findall(r"`(llmhub_[a-z_{},]+)`", SECTION)):
        base = re.sub(r"_total$", "", name)
        for expanded in _expand(base):
            assert f'"{expanded}"' in defined, f"the README names {name}, which /metrics does not serve"
    assert metrics.REQUESTS  # the module the names were checked against


def _expand(name: str) -> list[str]:
    """llmhub_budget_{limit,spent}_usd -> both names."""
    match = re.search(r"\{([^}]+)\}", name)
    if not match:
        return [name]
    return [name[: match.start()] + part + name[match.end() :] for part in match.group(1).split(",")]


OPERATIONS_SETTINGS = [
    "LLMHUB_LOG_FORMAT",
    "LLMHUB_METRICS_TOKEN",
    "PROMETHEUS_MULTIPROC_DIR",
    "LLMHUB_READY_TIMEOUT",
    "LLMHUB_RETENTION_DAYS",
    "LLMHUB_RETENTION_INTERVAL",
    "LLMHUB_BACKGROUND_TASKS",
    "LLMHUB_EVENT_LOOP",
]


@pytest.mark.parametrize("variable", OPERATIONS_SETTINGS)
def test_each_operations_setting_is_in_the_configuration_table(variable):
    assert re.search(rf"^\| `{variable}` \|", README, re.M)


def snippet(label: str, base_url: str, secret: str) -> str:
    """The first Python block after the bold label, pointed at this hub with this key."""
    block = CLIENTS.split(f"**{label}**", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    return block.replace("http://127.0.0.1:8000", base_url).replace('"llmh-..."', repr(secret))


@pytest.mark.django_db(transaction=True)
def test_the_python_snippets_run_against_a_live_hub(hub_url, alpha, fake_openai, fake_anthropic, capsys):
    from gateway import keys
    from gateway.models import StoredResponse
    from providers.registry import registry
    from tests.conftest import GOOD_KEYS
    from usage.models import UsageRecord

    for kind, fake in (("openai", fake_openai), ("anthropic", fake_anthropic)):
        registry.save(kind, {"api_key": GOOD_KEYS[kind]}, endpoint=fake.url, team=alpha)
    secret = keys.create(alpha, "readme").secret
    openai_sdk, anthropic_sdk, responses = (
        snippet(label, hub_url, secret)
        for label in ("OpenAI's Python SDK", "Anthropic's Python SDK", "The Responses API from OpenAI's SDK")
    )
    assert hub_url in openai_sdk and hub_url in anthropic_sdk and secret in openai_sdk + anthropic_sdk
    names: dict = {}
    exec(openai_sdk, names)  # the README's own code, run as a reader would
    assert names["answer"].choices[0].message.content == fake_anthropic.reply_text
    exec(responses, names)  # with the client of the first snippet, as the README says
    assert names["answer"].output_text == fake_openai.reply_text
    assert names["again"].previous_response_id == names["first"].id
    assert not StoredResponse.objects.exists()  # stored by `first`, deleted by the snippet's last line
    names = {}
    exec(anthropic_sdk, names)
    assert names["message"].content[0].text == fake_openai.reply_text
    assert names["counted"].input_tokens > 0
    printed = capsys.readouterr().out
    assert fake_openai.reply_text in printed  # Responses' output_text, then the streamed default model
    assert UsageRecord.objects.count() == 6  # a chat completion, three responses, two messages
