"""The request object of the API's handler (llmhub/api_handler.py): Django's ASGIRequest, made with
the META name of each header looked up rather than worked out again for every request."""

from __future__ import annotations

import functools
from typing import Any

from django.core.handlers.asgi import ASGIRequest, get_script_prefix

# Header names remembered with their META names: clients send the same few, and a client inventing
# names by the thousand only costs the lookups it misses.
NAMES_KEPT = 512


@functools.lru_cache(maxsize=NAMES_KEPT)
def meta_name(name: bytes) -> str | None:
    """A header's key in request.META, as Django's ASGIRequest names it; None for a name with an
    underscore, which Django leaves out (X_Forwarded_For must not pass for X-Forwarded-For)."""
    text = name.decode("latin1")
    if "_" in text:
        return None
    if text == "content-length":
        return "CONTENT_LENGTH"
    if text == "content-type":
        return "CONTENT_TYPE"
    return "HTTP_" + text.upper().replace("-", "_")


class ApiRequest(ASGIRequest):
    """Django's ASGIRequest (5.2), its __init__ written again with meta_name: for each header Django
    decodes the name, upper-cases it, replaces its dashes, formats its key and keeps it in a list
    to join (~75,000 instructions for a request of eight headers). The request is the same
    (tests/llmhub/test_api_request.py compares the two)."""

    def __init__(self, scope: dict[str, Any], body_file: Any) -> None:
        self.scope = scope
        self._post_parse_error = False
        self._read_started = False
        self.resolver_match = None
        self.path = scope["path"]
        self.script_name = get_script_prefix(scope)
        self.path_info = scope["path"].removeprefix(self.script_name) if self.script_name else scope["path"]
        self.method = scope["method"].upper()
        query_string = scope.get("query_string", "")
        if isinstance(query_string, bytes):
            query_string = query_string.decode()
        self.META = meta = {
            "REQUEST_METHOD": self.method,
            "QUERY_STRING": query_string,
            "SCRIPT_NAME": self.script_name,
            "PATH_INFO": self.path_info,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
        }
        if client := scope.get("client"):
            meta["REMOTE_ADDR"] = meta["REMOTE_HOST"] = client[0]
            meta["REMOTE_PORT"] = client[1]
        server = scope.get("server")
        meta["SERVER_NAME"], meta["SERVER_PORT"] = (server[0], str(server[1])) if server else ("unknown", "0")
        headers: dict[str, str] = {}
        for name, value in scope.get("headers", []):
            key = meta_name(name)
            if key is None:
                continue
            # A header sent several times is one META value, its values joined by commas.
            headers[key] = (
                f"{headers[key]},{value.decode('latin1')}" if key in headers else value.decode("latin1")
            )
        meta.update(headers)
        self._set_content_type_params(meta)
        self._stream = body_file
