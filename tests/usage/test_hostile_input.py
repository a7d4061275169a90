"""Hostile input in the browser's forms: the playground and automation templates."""

from __future__ import annotations

import csv
import io

import pytest

from automations.models import Automation
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from usage.models import Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def openai(alpha, fake_openai):
    return registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)


def test_the_playground_takes_a_special_token_as_text(bob_client, openai):
    message = "What does <|endoftext|> mean?"
    response = bob_client.post(
        "/playground/", {"model": "openai/gpt-4o", "message": message, "max_tokens": 100}
    )
    assert response.status_code == 302, response.content.decode()[:500]
    assert Run.objects.get().messages[-1]["content"] == message


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("Pad {x:>1000000000}", "format"),
        ("Show {x!r}", "conversion"),
        ("Index {x[0]}", "is not an input name"),
        ("Attribute {x.__class__}", "is not an input name"),
    ],
)
def test_a_template_takes_only_plain_placeholders(alice_client, openai, template, says):
    html = alice_client.post(
        "/automations/new/", {"name": "Pad", "prompt_template": template, "max_tokens": 300}
    ).content.decode()
    assert says in html
    assert not Automation.objects.exists()


def test_a_stored_template_with_a_format_spec_is_not_formatted(alpha, openai):
    """A template saved around the form (the Django admin, an old row) is filled, never formatted."""
    automation = Automation.objects.create(team=alpha, name="Old", prompt_template="Pad {x:>1000000000} {y}")
    assert automation.input_names() == ["x", "y"]
    assert automation.messages({"x": "a", "y": "b"})[-1].content == "Pad a b"


def test_inputs_and_templates_are_bounded(alice_client, bob_client, alpha, openai):
    long = "x" * 200_001
    html = alice_client.post(
        "/automations/new/", {"name": "Long", "prompt_template": long, "max_tokens": 300}
    ).content.decode()
    assert "at most" in html and not Automation.objects.exists()
    automation = Automation.objects.create(team=alpha, name="Echo", prompt_template="Say {text}")
    html = bob_client.post(f"/automations/{automation.pk}/", {"text": "y" * 1_000_001}).content.decode()
    assert "at most" in html and not Run.objects.exists()


@pytest.mark.parametrize("name", ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR"])
def test_csv_cells_that_a_spreadsheet_would_run_are_escaped(bob_client, alpha, alice, name):
    from gateway import keys
    from providers.base import TokenCount
    from usage.records import record_usage

    key = keys.create(alpha, name).key
    record_usage("openai", name, TokenCount(10, 5), "api", team=alpha, api_key=key)
    response = bob_client.get("/spend/usage.csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode(), newline="")))
    assert rows[0]["model"] == rows[0]["api_key"] == "'" + name
    assert rows[0]["input_tokens"] == "10"
