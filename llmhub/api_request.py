"""The request object of the API's handler (llmhub/api_handler.py): Django's ASGIRequest, made with
the META name of each header looked up rather than worked out again for every request."""

from __future__ import annotations

import codecs
import functools
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.core.handlers.asgi import ASGIRequest
from django.http.request import split_domain_port, validate_host
from django.utils.http import parse_header_parameters

from llmhub import conf

# Header names remembered with their META names: clients send the same few, and a client inventing
# names by the thousand only costs the lookups it misses.
NAMES_KEPT = 512
# Content-Type lines remembered with what they say (a client sends the same one, always).
CONTENT_TYPES_KEPT = 256


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


@functools.lru_cache(maxsize=CONTENT_TYPES_KEPT)
def content_type(line: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A Content-Type line's media type and parameters, as Django reads them: with a parameter
    (`application/json; charset=utf-8`, as .NET's and many Java clients send it) Django parses the
    line with an email.message.Message, ~65,000 instructions a request."""
    media_type, parameters = parse_header_parameters(line)
    return media_type, tuple(parameters.items())


class ApiRequest(ASGIRequest):
    """Django's ASGIRequest (5.2), its __init__ written again with meta_name: for each header Django
    decodes the name, upper-cases it, replaces its dashes, formats its key and keeps it in a list
    to join (~75,000 instructions for a request of eight headers); the Content-Type is read by
    content_type(). The request is the same (tests/llmhub/test_api_request.py compares the two)."""

    def __init__(self, scope: dict[str, Any], body_file: Any) -> None:
        self.scope = scope
        self._post_parse_error = False
        self._read_started = False
        self.resolver_match = None
        self.path = scope["path"]
        self.script_name = script_prefix(scope)
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
        self.content_type, parameters = content_type(meta.get("CONTENT_TYPE", ""))
        self.content_params = dict(parameters)
        charset = self.content_params.get("charset")
        if charset is not None and _known(charset):  # an unknown one leaves the encoding as it was
            # Not the encoding property: its setter drops the GET and POST read with the old
            # encoding, making GET to see whether it is there (~30,000 instructions); none is read yet.
            self._encoding = charset
        self._stream = body_file

    # Django's request reads settings it needs through django.conf.settings, ~3,000 instructions a
    # read (llmhub/conf.py): 7 reads a request in the three methods below (the allowed-hosts check,
    # the body's size checks), here read through llmhub.conf, with the same outcome and errors.

    def _get_raw_host(self) -> str:
        if conf.setting("USE_X_FORWARDED_HOST") and "HTTP_X_FORWARDED_HOST" in self.META:
            return self.META["HTTP_X_FORWARDED_HOST"]
        if "HTTP_HOST" in self.META:
            return self.META["HTTP_HOST"]
        return super()._get_raw_host()  # rebuilt from the server's name and port (PEP 333)

    def get_host(self) -> str:
        host = self._get_raw_host()
        allowed_hosts = conf.setting("ALLOWED_HOSTS")
        if conf.setting("DEBUG") and not allowed_hosts:
            allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
        domain, _ = split_domain_port(host)
        if domain and validate_host(domain, allowed_hosts):
            return host
        return super().get_host()  # refused: Django's DisallowedHost, with its message

    def _check_data_too_big(self, length: int) -> None:
        limit = conf.setting("DATA_UPLOAD_MAX_MEMORY_SIZE")
        if limit is not None and length > limit:
            raise RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.")


def script_prefix(scope: dict[str, Any]) -> str:
    """django.core.handlers.asgi.get_script_prefix(scope), with FORCE_SCRIPT_NAME read through
    llmhub.conf (twice a request: the request's and the handler's)."""
    return conf.setting("FORCE_SCRIPT_NAME") or scope.get("root_path", "") or ""


def _known(charset: str) -> bool:
    try:
        codecs.lookup(charset)
    except LookupError:
        return False
    return True
