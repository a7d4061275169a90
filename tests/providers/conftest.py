"""The API tests talk to the real ASGI app under daphne (the browser tests' server)."""

from tests.browser.conftest import hub_url  # noqa: F401 - the live server fixture
