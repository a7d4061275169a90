"""What a newcomer adding a provider relies on: the example file, the guide, and small adapters."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from providers.definitions import MODEL_FIELDS, PROVIDER_FIELDS, parse
from providers.kinds import ADAPTERS
from providers.models import Provider
from providers.registry import registry

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "providers.example.toml"
GUIDE = ROOT / "docs" / "adding-a-provider.md"
ADAPTER_LIMIT = 500


def test_the_example_file_parses_and_documents_every_field():
    text = EXAMPLE.read_text()
    ids = [definition.id for definition in parse(text, str(EXAMPLE), ADAPTERS)]
    assert {"groq", "openrouter", "deepseek", "mistral", "lm-studio"} <= set(ids)
    fields = sorted((PROVIDER_FIELDS | MODEL_FIELDS) - {"models"})  # models: the [[providers.models]] tables
    undocumented = [f for f in fields if not re.search(rf"^#\s+{f}\s", text, re.M)]
    assert not undocumented, f"fields missing from the example's documentation: {undocumented}"
    unused = [f for f in fields if not re.search(rf"^{f} =", text, re.M)]
    assert not unused, f"fields the example never shows in use: {unused}"


@pytest.mark.django_db
def test_the_example_file_loads_as_is(tmp_path, settings, monkeypatch):
    """Used unchanged, with no key in the environment: every card appears, only the keyless server
    is connected, and the Azure resource waits for its set-up form instead of breaking the load."""
    shutil.copy(EXAMPLE, tmp_path / "providers.toml")
    settings.LLMHUB_PROVIDERS_FILE = str(tmp_path / "providers.toml")
    for name in (
        "GROQ_API_KEY",
        "OPENROUTER_API_KEY",
        "DEEPSEEK_API_KEY",
        "MISTRAL_API_KEY",
        "OFFICE_VLLM_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    try:
        assert registry.reload() == ""
        assert {"groq", "openrouter", "azure-eu"} <= {kind.id for kind in registry.kinds()}
        assert list(Provider.objects.values_list("id", flat=True)) == ["lm-studio"]
        deepseek = next(kind for kind in registry.kinds() if kind.id == "deepseek")
        assert not deepseek.models[0].price_given  # left to the pricing library
    finally:
        settings.LLMHUB_PROVIDERS_FILE = ""
        registry.reload()


def test_the_guide_names_files_and_commands_that_exist():
    guide = GUIDE.read_text()
    for path in re.findall(r"`((?:providers|tests|docs)/[\w/.]+\.(?:py|toml|md))`", guide):
        if "acme" not in path:
            assert (ROOT / path).exists(), f"the guide names {path}, which does not exist"
    for command in re.findall(r"manage\.py (\w+)", guide):
        assert list(ROOT.glob(f"*/management/commands/{command}.py")), f"no command {command}"
    assert "DIALECTS" in (ROOT / "tests/providers/test_conformance.py").read_text()


def test_each_adapter_stays_under_500_lines():
    sizes = {
        path.name: len(path.read_text().splitlines()) for path in (ROOT / "providers/adapters").glob("*.py")
    }
    sizes.pop("__init__.py", None)
    print("\nadapter sizes (lines):", ", ".join(f"{name} {n}" for name, n in sorted(sizes.items())))
    assert sizes and max(sizes.values()) < ADAPTER_LIMIT, sizes
