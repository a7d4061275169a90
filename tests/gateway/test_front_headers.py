"""The API's front reads the few headers it needs in request.META (gateway.front.MetaHeaders), as
Django's request.headers would give them."""

from __future__ import annotations

import pytest
from django.http.request import HttpHeaders
from django.test import RequestFactory

from gateway.front import MetaHeaders

SENT = {
    "HTTP_AUTHORIZATION": "Bearer llmh-abc",
    "HTTP_X_API_KEY": "llmh-def",
    "HTTP_API_KEY": "llmh-ghi",
    "CONTENT_TYPE": "application/json",
}


@pytest.mark.parametrize(
    "name",
    ["authorization", "Authorization", "x-api-key", "api-key", "content-type", "content-length", "cookie"],
)
def test_it_reads_a_header_as_request_headers_does(name):
    request = RequestFactory().post(
        "/v1/chat/completions", data=b"{}", content_type="application/json", **SENT
    )
    assert MetaHeaders(request.META).get(name) == HttpHeaders(request.META).get(name)
    assert MetaHeaders(request.META).get(name, "none") == HttpHeaders(request.META).get(name, "none")
