"""Every /v1/ endpoint takes the key in the header each SDK sends it in, and browser programs on
the configured origins (LLMHUB_CORS_ORIGINS, set for the tests in tests/settings.py) may call it."""

import httpx
import pytest

from gateway import keys

pytestmark = pytest.mark.django_db(transaction=True)
ALLOWED = "https://notebook.example.test"


@pytest.fixture
def key(alpha):
    return keys.create(alpha, "notebook")


@pytest.mark.parametrize(
    "header",
    [("authorization", "Bearer {}"), ("x-api-key", "{}"), ("api-key", "{}"), ("Authorization", "bearer {}")],
)
def test_it_accepts_the_key_in_each_sdks_header(key, hub_url, header):
    name, template = header
    response = httpx.get(f"{hub_url}/v1/models", headers={name: template.format(key.secret)})
    assert response.status_code == 200 and response.json()["object"] == "list"


def test_it_refuses_a_wrong_bearer_even_beside_a_right_x_api_key(key, hub_url):
    headers = {"authorization": "Bearer llmh-wrong", "x-api-key": key.secret}
    response = httpx.get(f"{hub_url}/v1/models", headers=headers)
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


def test_it_refuses_a_revoked_key_in_any_header(key, hub_url, alice):
    keys.revoke(key.key, alice)
    for headers in ({"x-api-key": key.secret}, {"api-key": key.secret}):
        assert httpx.get(f"{hub_url}/v1/models", headers=headers).status_code == 401


def test_a_browser_program_on_an_allowed_origin_passes_the_preflight_and_reads_the_answer(key, hub_url):
    preflight = httpx.options(
        f"{hub_url}/v1/chat/completions",
        headers={
            "origin": ALLOWED,
            "access-control-request-method": "POST",
            "access-control-request-headers": "x-api-key, content-type, anthropic-version",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ALLOWED
    assert "x-api-key" in preflight.headers["access-control-allow-headers"]
    assert "access-control-allow-credentials" not in preflight.headers  # never the session cookie
    answer = httpx.get(f"{hub_url}/v1/models", headers={"origin": ALLOWED, "x-api-key": key.secret})
    assert answer.headers["access-control-allow-origin"] == ALLOWED


def test_other_origins_and_the_pages_get_no_cors_headers(key, hub_url):
    other = httpx.get(
        f"{hub_url}/v1/models", headers={"origin": "https://evil.example.test", "x-api-key": key.secret}
    )
    assert "access-control-allow-origin" not in other.headers
    page = httpx.get(f"{hub_url}/accounts/login/", headers={"origin": ALLOWED})
    assert "access-control-allow-origin" not in page.headers
