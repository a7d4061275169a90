"""What an operator follows: the README's "Running LLMHub for a team" names things that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
SECTION = README.split("## Running LLMHub for a team", 1)[1].split("\n## ", 1)[0]


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
]


@pytest.mark.parametrize("variable", OPERATIONS_SETTINGS)
def test_each_operations_setting_is_in_the_configuration_table(variable):
    assert re.search(rf"^\| `{variable}` \|", README, re.M)
