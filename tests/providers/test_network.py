"""Server-side request forgery: where a team admin may point a provider, checked when an endpoint is
saved and again at every new connection, after name resolution. The fakes listen on loopback, which
the test settings allow; these tests take that allowance away."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
from django.test import Client

from providers import network
from providers.adapters.openai import OpenAIAdapter
from providers.errors import EndpointRefused
from providers.models import Provider
from providers.registry import registry
from tests.conftest import GOOD_KEYS, adapter_for

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
KEY = GOOD_KEYS["openai"]


@pytest.fixture
def no_allow_list(settings):
    settings.LLMHUB_ALLOWED_PRIVATE_NETWORKS = []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/v1",
        "http://2130706433/v1",  # 127.0.0.1 in decimal
        "http://0177.0.0.1/v1",  # in octal
        "http://0x7f.1/v1",
        "http://localhost:11434",
        "http://api.localhost/v1",
        "http://[::1]:8000/v1",
        "http://[::ffff:127.0.0.1]/v1",
        "http://[::ffff:a9fe:a9fe]/",  # 169.254.169.254, IPv4-mapped
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/v1",
        "http://172.16.3.4/v1",
        "http://192.168.1.20:8000/v1",
        "http://100.64.0.1/v1",
        "http://[fd00::1]/v1",
        "http://[fe80::1]/v1",
        "http://0.0.0.0:8000/v1",
        "http://[2002:7f00:1::]/v1",  # 6to4 around 127.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 around 169.254.169.254
    ],
)
def test_a_team_admin_may_not_save_an_address_on_the_hubs_network(no_allow_list, url):
    with pytest.raises(network.AddressRefused, match="Only a site admin"):
        network.check_endpoint(url, private_network=False)
    network.check_endpoint(url, private_network=True)  # a site admin may (a local Ollama, vLLM)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://api.example.com/v1?api-version=1", "query string"),
        ("https://api.example.com/v1?", "query string"),
        ("https://api.example.com/v1#top", "fragment"),
        ("https://user:secret@api.example.com/v1", "user name or password"),
        ("ftp://api.example.com/v1", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
    ],
)
def test_an_endpoint_has_no_query_fragment_or_password(url, says):
    with pytest.raises(network.AddressRefused, match=says):
        network.check_endpoint(url, private_network=True)


def test_the_allow_list_opens_named_networks_to_team_admins(settings):
    settings.LLMHUB_ALLOWED_PRIVATE_NETWORKS = ["192.168.1.0/24", "ollama.lan"]
    network.check_addresses("192.168.1.20", 80, ["192.168.1.20"], private_network=False)
    network.check_addresses("ollama.lan", 80, ["10.1.2.3"], private_network=False)
    with pytest.raises(network.AddressRefused):
        network.check_addresses("192.168.2.1", 80, ["192.168.2.1"], private_network=False)


def test_a_name_resolving_to_one_public_and_one_private_address_is_refused(no_allow_list):
    with pytest.raises(network.AddressRefused):
        network.check_addresses("mixed.example", 443, ["93.184.216.34", "10.0.0.1"], private_network=False)


def test_the_hubs_own_names_are_refused_even_for_a_site_admin(settings):
    settings.ALLOWED_HOSTS = ["hub.example.com", ".example.org", "127.0.0.1"]
    with pytest.raises(network.AddressRefused, match="is this hub"):
        network.check_endpoint("https://hub.example.com/v1", private_network=True)


def test_the_connect_form_refuses_loopback_for_a_team_admin(alice_client, no_allow_list, fake_openai):
    for action in ("test", "save", "save_anyway"):
        data = {"api_key": KEY, "endpoint": fake_openai.url, "action": action}
        html = alice_client.post("/providers/connect/openai/", data, **HTMX).content.decode()
        assert "127.0.0.1 is a loopback address. Only a site admin" in html
    assert fake_openai.requests == [] and not Provider.objects.exists()


def test_a_site_admin_connects_a_local_server(no_allow_list, fake_openai, alpha, admin_user):
    client = Client()
    client.force_login(admin_user)
    data = {"api_key": KEY, "endpoint": fake_openai.url, "action": "save"}
    assert client.post("/providers/connect/openai/", data, **HTMX).status_code == 200
    provider = Provider.objects.get()
    assert provider.private_network and provider.endpoint_set_by == admin_user


def test_a_team_admin_keeps_a_site_admins_local_endpoint_when_renaming(
    alice_client, alpha, no_allow_list, fake_openai, admin_user
):
    registry.save(
        "openai",
        {"api_key": KEY},
        endpoint=fake_openai.url,
        team=alpha,
        private_network=True,
        set_by=admin_user,
    )
    data = {"api_key": "", "endpoint": fake_openai.url, "display_name": "Local", "action": "save"}
    assert alice_client.post("/providers/openai/edit/", data, **HTMX)["HX-Redirect"] == "/providers/settings/"
    provider = Provider.objects.get()
    assert provider.display_name == "Local" and provider.private_network


def test_the_address_is_checked_again_at_connect_time(settings, fake_openai):
    """Saved while allowed; by the time it connects, not (a DNS answer or the allow-list changed)."""
    adapter = adapter_for(OpenAIAdapter, fake_openai)
    asyncio.run(adapter.validate_credentials(adapter.config))
    settings.LLMHUB_ALLOWED_PRIVATE_NETWORKS = []
    seen = len(fake_openai.requests)
    for endpoint in (fake_openai.url, f"http://localhost:{fake_openai.port}/v1"):
        refused = adapter_for(OpenAIAdapter, fake_openai, endpoint=endpoint)
        with pytest.raises(EndpointRefused, match="was not contacted: .* is a loopback address"):
            asyncio.run(refused.validate_credentials(refused.config))
    assert len(fake_openai.requests) == seen


def test_a_pooled_connection_of_a_local_provider_is_never_lent_to_a_public_one(no_allow_list, fake_openai):
    async def both():
        local = adapter_for(OpenAIAdapter, fake_openai, private_network=True)
        await local.validate_credentials(local.config)
        public = adapter_for(OpenAIAdapter, fake_openai)
        await public.validate_credentials(public.config)

    with pytest.raises(EndpointRefused):
        asyncio.run(both())
    assert len(fake_openai.requests) == 1


def test_an_open_and_a_closed_port_look_the_same_to_a_team_admin(no_allow_list, fake_openai):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
    messages = []
    for port in (fake_openai.port, closed_port):
        adapter = adapter_for(OpenAIAdapter, fake_openai, endpoint=f"http://127.0.0.1:{port}/v1")
        with pytest.raises(EndpointRefused) as refused:
            asyncio.run(adapter.validate_credentials(adapter.config))
        messages.append(refused.value.user_message)
    assert messages[0] == messages[1]


def test_upstream_error_bodies_reach_a_user_only_as_a_short_reason(fake_openai):
    banner = "internal admin panel v1.2 <script>x</script>\n" + "secret-ish detail " * 100
    fake_openai.fail_next(418, body={"error": {"message": banner, "type": "teapot"}})
    adapter = adapter_for(OpenAIAdapter, fake_openai)
    with pytest.raises(Exception) as failed:
        asyncio.run(adapter.validate_credentials(adapter.config))
    message = failed.value.user_message
    assert "HTTP 418" in message and "\n" not in message and len(message) < 200


@pytest.mark.django_db(transaction=True)
def test_the_hub_refuses_itself_as_an_upstream(hub_url, alpha, admin_user):
    """A site admin may use loopback, but not the hub's own address: it would call itself."""
    client = Client()
    client.force_login(admin_user)
    cookies = {"sessionid": client.cookies["sessionid"].value}
    with httpx.Client(base_url=hub_url, cookies=cookies, timeout=30) as browser:
        browser.get("/providers/connect/openai/")
        data = {"api_key": KEY, "endpoint": f"{hub_url}/v1", "action": "test"}
        html = browser.post(
            "/providers/connect/openai/",
            data=data,
            headers={"x-csrftoken": browser.cookies["csrftoken"], "hx-request": "true"},
        ).text
    assert "is this hub: a provider cannot point back at it" in html


def test_a_redirect_is_never_followed(fake_openai):
    """Followed, a redirect would take the request (and its key) wherever the answer says."""
    fake_openai.fail_next(307, body={}, headers={"location": f"{fake_openai.url}/elsewhere"})
    adapter = adapter_for(OpenAIAdapter, fake_openai)
    asyncio.run(adapter.validate_credentials(adapter.config))
    assert [request.path for request in fake_openai.requests] == ["/v1/models"]
