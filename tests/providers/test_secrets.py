"""A saved key never shows up again: not in the admin, not in logs, not in an exception report."""

from __future__ import annotations

import logging
import sys

import pytest
from django.views.debug import ExceptionReporter

from providers.errors import InvalidCredentials
from providers.registry import registry
from tests.conftest import BAD_KEY, GOOD_KEYS

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw-for-tests-only")
    client.force_login(user)
    return client


def test_the_admin_shows_only_the_masked_key(staff_client):
    provider = registry.save("openai", {"api_key": GOOD_KEYS["openai"], "organization_id": "org-visible"})
    for url in ("/admin/providers/provider/", "/admin/providers/provider/openai/change/"):
        html = staff_client.get(url).content.decode()
        assert "sk-...vX2Q" in html
        assert GOOD_KEYS["openai"] not in html
        assert provider.credentials_encrypted not in html


def test_the_admin_cannot_add_a_provider_around_the_encrypted_set_up(staff_client):
    assert staff_client.get("/admin/providers/provider/add/").status_code == 403


def test_the_settings_page_shows_only_the_masked_key(alice_client, alpha):
    registry.save("anthropic", {"api_key": GOOD_KEYS["anthropic"]}, team=alpha)
    html = alice_client.get("/providers/settings/").content.decode()
    assert "Claude Sonnet 4.5" in html and "sk-...a1B2" in html
    assert GOOD_KEYS["anthropic"] not in html


@pytest.mark.django_db(transaction=True)
async def test_an_exception_report_of_a_failed_call_holds_no_key(fake_openai, rf, caplog):
    from asgiref.sync import sync_to_async

    caplog.set_level(logging.DEBUG)
    await sync_to_async(registry.save)("openai", {"api_key": BAD_KEY}, endpoint=fake_openai.url)
    try:
        await registry.validate("openai")
    except InvalidCredentials:
        report = ExceptionReporter(rf.get("/"), *sys.exc_info())
        text = report.get_traceback_text() + report.get_traceback_html()
    assert "Your OpenAI API key is invalid" in text
    assert BAD_KEY not in text
    assert BAD_KEY not in caplog.text
