"""The layout every page shares: grouped navigation, the current page marked, error pages inside the
layout, and no inline script anywhere (a Content-Security-Policy can forbid it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.template.loader import render_to_string
from django.test import Client, RequestFactory
from django.views import defaults

from providers.registry import registry
from tests.conftest import GOOD_KEYS
from usage import fallback
from usage.models import Run

pytestmark = pytest.mark.django_db
TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def test_the_navigation_is_grouped_and_marks_the_current_page(alice_client, alpha):
    html = alice_client.get("/spend/").content.decode()
    for group in ("Use", "Manage", "Insights"):
        assert f">{group}</span>" in html
    assert '<a href="/spend/" aria-current="page">Spend</a>' in html
    assert '<a href="/runs/">Runs</a>' in html and '<a href="/settings/team/">Team</a>' in html
    assert html.count('aria-current="page"') == 1
    assert 'aria-controls="main-nav"' in html  # the phone menu button


def test_a_page_inside_a_section_marks_its_section(alice_client, alpha):
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, team=alpha)
    html = alice_client.get("/providers/openai/budget/").content.decode()
    assert '<a href="/budgets/" aria-current="page">Budgets</a>' in html


def test_members_see_no_management_links(bob_client, alpha):
    html = bob_client.get("/runs/").content.decode()
    assert ">Manage</span>" not in html and "/settings/team/" not in html
    assert '<a href="/runs/" aria-current="page">Runs</a>' in html


def test_a_missing_page_is_styled_inside_the_layout(alice_client, settings):
    assert not settings.DEBUG
    response = alice_client.get("/no/such/page/")
    html = response.content.decode()
    assert response.status_code == 404
    assert "<h1>Page not found</h1>" in html and "/no/such/page/" in html
    assert 'aria-label="Main"' in html and "css/app." in html


def test_a_refused_page_is_styled_inside_the_layout(bob_client, alpha):
    response = bob_client.get("/settings/team/")
    assert response.status_code == 403
    assert (
        "<h1>Not allowed</h1>" in response.content.decode()
        and 'aria-label="Main"' in response.content.decode()
    )


def test_the_error_page_is_styled_and_needs_nothing_from_the_request():
    response = defaults.server_error(RequestFactory().get("/boom/"))
    html = response.content.decode()
    assert response.status_code == 500
    assert "<h1>Something went wrong</h1>" in html and "css/app." in html


def test_anonymous_visitors_get_the_styled_404_too(alice):
    response = Client().get("/no/such/page/")
    assert response.status_code == 404 and "Page not found" in response.content.decode()


def test_no_template_carries_inline_script_or_handlers():
    inline_script = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
    handler = re.compile(r"\son[a-z]+\s*=", re.I)
    style = re.compile(r'\sstyle\s*=\s*"', re.I)
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        assert not inline_script.search(text), path
        assert not handler.search(text), path
        assert not style.search(text), path


def test_ask_mode_offers_one_way_to_stop(alpha, alice):
    run = Run(
        team=alpha, user=alice, model_requested="openai/gpt-4o", status=Run.Status.STREAMING, max_tokens=10
    )
    question = fallback.Question(
        "OpenAI is failing. Switch to Claude Haiku 4.5?", "anthropic/claude-haiku-4-5"
    )
    context = {"run": run, "event": question, "can_control": True}
    html = render_to_string("usage/_run_status.html", context)
    assert html.count("<button") == 2 and ">Switch<" in html and ">Stop the run<" in html
    assert "Cancel" not in html and "Streaming from" not in html
    watched = render_to_string("usage/_run_status.html", {**context, "can_control": False})
    assert "<button" not in watched  # a teammate watching cannot answer for its owner


def test_a_retry_says_which_model_when_and_which_attempt(alpha, alice):
    run = Run(
        team=alpha,
        user=alice,
        model_requested="openai/gpt-4o-mini",
        status=Run.Status.STREAMING,
        max_tokens=10,
    )
    waiting = fallback.Waiting(
        3, "OpenAI rate limit hit. Retrying openai/gpt-4o-mini in 3 s (attempt 2 of 4)."
    )
    context = {"run": run, "event": waiting, "can_control": True}
    html = render_to_string("usage/_run_status.html", context)
    assert "Retrying openai/gpt-4o-mini in 3 s (attempt 2 of 4)." in html and "Streaming from" not in html
