"""Guessing API keys: past a number of wrong keys in a minute, an address is answered 429 with
retry-after, in OpenAI's error shape; other addresses are not affected."""

from __future__ import annotations

import pytest
from django.test import Client

from gateway import keys

pytestmark = pytest.mark.django_db


def models(client: Client, key: str):
    return client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {key}")


def test_an_address_sending_wrong_keys_is_slowed_down(alpha, settings):
    settings.LLMHUB_API_KEY_FAILURES_PER_MINUTE = 5
    good = keys.create(alpha, "ci").secret
    guesser = Client(REMOTE_ADDR="198.51.100.23")
    for n in range(5):
        assert models(guesser, f"llmh-guess-{n}").status_code == 401
    refused = models(guesser, "llmh-guess-again")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_failed_attempts"
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(refused["retry-after"]) <= 60
    assert models(guesser, good).status_code == 429  # until the minute is over, even a right key
    assert models(Client(REMOTE_ADDR="198.51.100.24"), good).status_code == 200


def test_behind_a_proxy_the_forwarded_address_is_counted(alpha, settings):
    settings.LLMHUB_API_KEY_FAILURES_PER_MINUTE = 3
    settings.LLMHUB_TRUSTED_PROXIES = 1
    proxy = Client(REMOTE_ADDR="10.0.0.2")
    for n in range(3):  # the client's own X-Forwarded-For entry (1.2.3.4) is not believed
        proxy.get(
            "/v1/models", HTTP_AUTHORIZATION=f"Bearer llmh-x{n}", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.9"
        )
    blocked = proxy.get("/v1/models", HTTP_AUTHORIZATION="Bearer llmh-y", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert blocked.status_code == 429
    other = proxy.get("/v1/models", HTTP_AUTHORIZATION="Bearer llmh-y", HTTP_X_FORWARDED_FOR="203.0.113.10")
    assert other.status_code == 401
