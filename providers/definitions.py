"""Provider definitions: a known wire dialect plus data (endpoint, models, prices), from TOML.

The built-in providers are definitions too (`providers/builtin.toml`). Every field is checked, and an
error names the file, the line, the provider and the field, so a typo is found in seconds.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from providers.base import ModelInfo, TaskType
from providers.chat import Feature
from providers.network import AddressRefused, check_url

BUILTIN_FILE = Path(__file__).with_name("builtin.toml")
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,199}$")

_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
# Headers a definition may not add: the HTTP layer's own, and those that open a cloud provider's
# instance metadata service (169.254.169.254 wants Metadata-Flavor: Google, Metadata: true, ...).
FORBIDDEN_HEADERS = frozenset(
    [
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
        "te",
        "trailer",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "cookie",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
        "metadata",
        "metadata-flavor",
        "x-google-metadata-request",
        "x-aws-ec2-metadata-token",
        "x-aws-ec2-metadata-token-ttl-seconds",
        "x-identity-header",
    ]
)

PROVIDER_FIELDS = {
    "id",
    "name",
    "dialect",
    "endpoint",
    "key_url",
    "pricing_provider",
    "default_model",
    "api_key_env",
    "key_required",
    "auth_header",
    "auth_scheme",
    "headers",
    "models",
}
MODEL_FIELDS = {
    "id",
    "name",
    "context_window",
    "max_output",
    "streaming",
    "capabilities",
    "reasoning",
    "input_per_1m",
    "output_per_1m",
    "prices_as",
}


class DefinitionError(ValueError):
    """A malformed definition: `str()` says where ("providers.toml:12: providers[2] "groq": ...")."""

    def __init__(self, source: str, line: int | None, where: str, message: str, field: str = "") -> None:
        self.source, self.line, self.where, self.field, self.message = source, line, where, field, message
        location = f"{source}:{line}" if line else source
        super().__init__(f"{location}: {where}: {message}" if where else f"{location}: {message}")


@dataclass(frozen=True)
class ModelDefinition:
    info: ModelInfo
    price_given: bool  # the file states a price (source "config"), rather than the library's
    prices_as: str = ""  # priced (and limited) as this model: an Azure deployment's underlying model


@dataclass(frozen=True)
class ProviderDefinition:
    id: str
    name: str
    dialect: str
    endpoint: str
    key_url: str = ""
    pricing_provider: str | None = None
    default_model: str = ""
    api_key_env: str = ""
    key_required: bool = True
    auth_header: str = ""  # "" keeps the dialect's own (Authorization: Bearer for openai)
    auth_scheme: str = "Bearer"
    headers: tuple[tuple[str, str], ...] = ()
    models: tuple[ModelDefinition, ...] = ()
    source: str = "builtin"


def load_file(path: Path, dialects: Collection[str]) -> list[ProviderDefinition]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise DefinitionError(str(path), None, "", f"cannot read: {exc.strerror}") from None
    return parse(text, source=str(path), dialects=dialects)


def parse(text: str, source: str, dialects: Collection[str]) -> list[ProviderDefinition]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise DefinitionError(source, int(line.group(1)) if line else None, "", str(exc)) from None
    unknown = set(data) - {"providers"}
    if unknown:
        raise DefinitionError(source, None, "", f"unknown top-level key {sorted(unknown)[0]!r}")
    entries = data.get("providers", [])
    if not isinstance(entries, list):
        raise DefinitionError(source, None, "", "use [[providers]] tables")
    parser = _Parser(text, source, dialects)
    definitions = [parser.provider(index, entry) for index, entry in enumerate(entries)]
    seen: set[str] = set()
    for index, definition in enumerate(definitions):
        if definition.id in seen:
            parser.fail(index, definition.id, "id", f"id {definition.id!r} is defined twice")
        seen.add(definition.id)
    return definitions


class _Parser:
    def __init__(self, text: str, source: str, dialects: Collection[str]) -> None:
        self.lines = text.splitlines()
        self.source = source
        self.dialects = sorted(dialects)
        # Line numbers of each [[providers]] header, so errors can point into the file.
        self.starts = [i for i, line in enumerate(self.lines) if line.strip() == "[[providers]]"]

    def fail(self, index: int, pid: str, field: str, message: str, model: int | None = None) -> None:
        where = f'providers[{index + 1}] "{pid}"' if pid else f"providers[{index + 1}]"
        if model is not None:
            where += f" models[{model + 1}]"
        field_name = f"models.{field}" if model is not None else field
        raise DefinitionError(self.source, self._line(index, field, model), where, message, field_name)

    def _line(self, index: int, field: str, model: int | None) -> int | None:
        if index >= len(self.starts):
            return None
        start = self.starts[index]
        end = self.starts[index + 1] if index + 1 < len(self.starts) else len(self.lines)
        block = range(start, end)
        if model is not None:
            headers = [i for i in block if self.lines[i].strip() == "[[providers.models]]"]
            if model < len(headers):
                following = [h for h in headers if h > headers[model]]
                block = range(headers[model], following[0] if following else end)
        key = re.compile(rf"^\s*{re.escape(field)}\s*=")
        for i in block:
            if key.match(self.lines[i]):
                return i + 1
        return block.start + 1

    def provider(self, index: int, entry: Any) -> ProviderDefinition:
        if not isinstance(entry, dict):
            self.fail(index, "", "", "must be a table")
        pid = entry.get("id") if isinstance(entry.get("id"), str) else ""
        for key in entry:
            if key not in PROVIDER_FIELDS:
                self.fail(index, pid, key, f"unknown field {key!r}")

        def text(field: str, required: bool = False, pattern: re.Pattern[str] | None = None) -> str:
            value = entry.get(field, "")
            if not isinstance(value, str):
                self.fail(index, pid, field, f"{field} must be a string")
            if required and not value:
                self.fail(index, pid, field, f"{field} is required")
            if value and pattern and not pattern.match(value):
                self.fail(index, pid, field, f"{field} {value!r} is not valid")
            return value

        pid = text("id", required=True, pattern=_ID)
        dialect = text("dialect", required=True)
        if dialect not in self.dialects:
            self.fail(index, pid, "dialect", f"dialect {dialect!r} is not one of {', '.join(self.dialects)}")
        endpoint = text("endpoint", required=True)
        if not re.match(r"^https?://[^\s/]+", endpoint):
            self.fail(index, pid, "endpoint", f"endpoint {endpoint!r} is not an http(s) URL")
        try:
            check_url(endpoint)
        except AddressRefused as refused:
            self.fail(index, pid, "endpoint", refused.reason)
        headers = self.headers(index, pid, entry.get("headers", {}))
        raw_models = entry.get("models", [])
        if not isinstance(raw_models, list):
            self.fail(index, pid, "models", "use [[providers.models]] tables")
        models = tuple(self.model(index, pid, n, m) for n, m in enumerate(raw_models))
        default_model = text("default_model")
        for flag in ("key_required",):
            if not isinstance(entry.get(flag, True), bool):
                self.fail(index, pid, flag, f"{flag} must be true or false")
        auth_scheme = entry.get("auth_scheme", "Bearer")
        if not isinstance(auth_scheme, str):
            self.fail(index, pid, "auth_scheme", 'auth_scheme must be a string ("" for a bare key)')
        if default_model and models and default_model not in {m.info.id for m in models}:
            self.fail(index, pid, "default_model", f"default_model {default_model!r} is not listed")
        return ProviderDefinition(
            id=pid,
            name=text("name") or pid,
            dialect=dialect,
            endpoint=endpoint.rstrip("/"),
            key_url=text("key_url"),
            pricing_provider=text("pricing_provider") or None,
            default_model=default_model,
            api_key_env=text("api_key_env", pattern=re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")),
            key_required=entry.get("key_required", True),
            auth_header=text("auth_header", pattern=re.compile(r"^[A-Za-z0-9-]+$")).lower(),
            auth_scheme=auth_scheme,
            headers=tuple(sorted(headers.items())),
            models=models,
            source=self.source,
        )

    def headers(self, index: int, pid: str, headers: Any) -> dict[str, str]:
        """Extra headers: strings, valid names, none the HTTP layer sets or a metadata service wants."""
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            self.fail(index, pid, "headers", "headers must be a table of strings")
        for name, value in headers.items():
            if not _HEADER_NAME.match(name) or "\n" in value or "\r" in value:
                self.fail(index, pid, "headers", f"header {name!r} is not a valid HTTP header")
            if name.lower() in FORBIDDEN_HEADERS:
                reason = "the hub sets it, or it would open a cloud's metadata service"
                self.fail(index, pid, "headers", f"header {name} cannot be set: {reason}")
        return headers

    def model(self, index: int, pid: str, number: int, entry: Any) -> ModelDefinition:
        def fail(field: str, message: str) -> None:
            self.fail(index, pid, field, message, model=number)

        if not isinstance(entry, dict):
            fail("", "must be a table")
        for key in entry:
            if key not in MODEL_FIELDS:
                fail(key, f"unknown field {key!r}")
        model_id = entry.get("id")
        if not isinstance(model_id, str) or not _MODEL_ID.match(model_id):
            fail("id", f"id {model_id!r} is not a valid model id")

        def count(field: str) -> int:
            value = entry.get(field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                fail(field, f"{field} must be a positive whole number of tokens")
            return value

        def price(field: str) -> Decimal | None:
            value = entry.get(field)
            if value is None:
                return None
            if not isinstance(value, str):
                # A float such as 0.59 is not exactly 0.59: money is written as a string.
                fail(field, f'{field} must be a string such as "0.59", not {value!r}')
            try:
                amount = Decimal(value)
            except InvalidOperation:
                fail(field, f"{field} {value!r} is not a number")
            if not amount.is_finite() or amount < 0:
                fail(field, f"{field} must be zero or more")
            return amount

        capabilities = entry.get("capabilities", ["chat"])
        known = {t.value for t in TaskType} | {f.value for f in Feature}
        if not isinstance(capabilities, list) or not set(capabilities) <= known:
            fail("capabilities", f"capabilities must be a list of {', '.join(sorted(known))}")
        input_price, output_price = price("input_per_1m"), price("output_per_1m")
        if (input_price is None) != (output_price is None):
            fail("input_per_1m", "give both input_per_1m and output_per_1m, or neither")
        for flag in ("streaming", "reasoning"):
            if not isinstance(entry.get(flag, False), bool):
                fail(flag, f"{flag} must be true or false")
        info = ModelInfo(
            id=model_id,
            display_name=str(entry.get("name", model_id)),
            context_window=count("context_window"),
            max_output=count("max_output"),
            supports_streaming=entry.get("streaming", True),
            input_per_1m=input_price,
            output_per_1m=output_price,
            capabilities=frozenset(capabilities),
            reasoning=entry.get("reasoning", False),
        )
        prices_as = entry.get("prices_as", "")
        if not isinstance(prices_as, str):
            fail("prices_as", 'prices_as must be a model id such as "gpt-4o"')
        return ModelDefinition(info=info, price_given=input_price is not None, prices_as=prices_as)


def parse_entry(entry: dict[str, Any], source: str, dialects: Collection[str]) -> ProviderDefinition:
    """One provider given as data (a custom provider from the UI), checked exactly as a file's."""
    return _Parser("", source, dialects).provider(0, entry)


def load_user_files(
    main_file: str, dialects: Collection[str], reserved_ids: Collection[str] = ()
) -> list[ProviderDefinition]:
    """The providers file and every `providers.d/*.toml` beside it, in name order. An id may be
    defined once across all of them, and never as a built-in provider's."""
    if not main_file:
        return []
    path = Path(main_file)
    files = [path] + sorted((path.parent / "providers.d").glob("*.toml"))
    definitions: list[ProviderDefinition] = []
    seen = {pid: "the built-in providers" for pid in reserved_ids}
    for file in files:
        if file == path and not path.exists():
            raise DefinitionError(
                str(path), None, "", "LLMHUB_PROVIDERS_FILE names a file that does not exist"
            )
        for definition in load_file(file, dialects):
            if definition.id in seen:
                raise DefinitionError(
                    str(file), None, f'"{definition.id}"', f"already defined in {seen[definition.id]}"
                )
            seen[definition.id] = str(file)
            definitions.append(definition)
    return definitions
