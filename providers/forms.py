"""Provider set-up forms, generated from an adapter's credential fields: no template per provider."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.utils.text import slugify

from providers import network
from providers.base import CredentialField, TaskType
from providers.catalog import limits_for
from providers.chat import Feature
from providers.credentials import CredentialsMissing
from providers.crypto import CredentialsUnreadable
from providers.definitions import DefinitionError, ProviderDefinition, parse_entry
from providers.models import Provider
from providers.registry import registry

FEATURES = {f.value for f in Feature} | {TaskType.REASONING.value}
CAPABILITIES = FEATURES | {t.value for t in TaskType}

# Extra headers are stored and audited in plain text: ones named like a credential are refused.
SECRET_HEADER = re.compile(r"authorization|key|token|secret|password", re.IGNORECASE)


class ProviderSetupForm(forms.Form):
    """Connecting a provider and editing one: its credentials, endpoint and name.

    Editing, an empty secret means "unchanged", as long as the endpoint stays the one the key was
    saved for (registry.merge_credentials). `private_network`: whether this user may point it at the
    hub's own network (a site admin). After is_valid(): `endpoint`, `merged` (what a connection test
    may send) and `private_network` (what the endpoint is saved with).
    """

    def __init__(
        self,
        kind: ProviderDefinition,
        fields: tuple[CredentialField, ...],
        *args: Any,
        provider: Provider | None = None,
        private_network: bool = False,
        **kwargs: Any,
    ) -> None:
        if provider is not None:
            kwargs.setdefault("initial", _initial(provider, fields))
        super().__init__(*args, **kwargs)
        self.kind, self.provider = kind, provider
        self.credential_fields = fields
        self.user_private_network = self.private_network = private_network
        self.endpoint, self.merged = "", {}
        for field in fields:
            placeholder = field.placeholder
            if provider is not None and field.secret and (masked := provider.masked_key()):
                placeholder = f"unchanged ({masked})"
            attrs = {"placeholder": placeholder, "autocomplete": "off", "spellcheck": "false"}
            # A secret is never rendered back into the page, not even the one just typed.
            widget = (
                forms.PasswordInput(attrs=attrs, render_value=False)
                if field.secret
                else forms.TextInput(attrs)
            )
            self.fields[field.name] = forms.CharField(
                label=field.label,
                required=field.required and provider is None,
                help_text=field.help_text,
                widget=widget,
                strip=True,
            )
        self.fields["endpoint"] = forms.URLField(
            label="Endpoint",
            required=False,
            assume_scheme="https",
            max_length=500,
            help_text=f"Leave empty for {kind.endpoint}. For proxies and compatible servers.",
            widget=forms.URLInput(attrs={"placeholder": kind.endpoint}),
        )
        self.fields["display_name"] = forms.CharField(
            label="Name",
            required=False,
            max_length=100,
            widget=forms.TextInput(attrs={"placeholder": kind.name}),
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        self.endpoint = (data["endpoint"] or self.kind.endpoint).rstrip("/")
        # A site admin's endpoint on the hub's network stays usable while only the name or key changes.
        unchanged = self.provider is not None and self.endpoint == self.provider.endpoint
        self.private_network = self.user_private_network or (unchanged and self.provider.private_network)
        try:
            network.check_endpoint(self.endpoint, self.private_network)
        except network.AddressRefused as refused:
            self.add_error("endpoint", refused.reason)
            return data
        try:
            self.merged = registry.merge_credentials(
                self.provider, self.kind, self.credentials(), self.endpoint
            )
        except CredentialsMissing as missing:
            secret = next((f.name for f in self.credential_fields if f.secret), None)
            self.add_error(secret, str(missing))
        return data

    def credentials(self) -> dict[str, str]:
        return {f.name: self.cleaned_data.get(f.name, "") for f in self.credential_fields}

    def changes_connection(self) -> bool:
        """A new key typed, or another endpoint: what must be tested before it is saved."""
        typed = any(self.cleaned_data.get(f.name) for f in self.credential_fields if f.secret)
        return self.provider is None or typed or self.endpoint != self.provider.endpoint

    def secret_fields(self) -> list[forms.BoundField]:
        return [self[f.name] for f in self.credential_fields if f.secret]

    def other_fields(self) -> list[forms.BoundField]:
        return [self[f.name] for f in self.credential_fields if not f.secret]


def _initial(provider: Provider, fields: tuple[CredentialField, ...]) -> dict[str, str]:
    """A provider's values for its form: never a secret, and nothing it cannot decrypt."""
    try:
        stored = provider.credentials()
    except CredentialsUnreadable:
        stored = {}
    plain = {f.name: stored.get(f.name, "") for f in fields if not f.secret}
    return {"display_name": provider.display_name, "endpoint": provider.endpoint, **plain}


class DefaultModelForm(forms.Form):
    model = forms.ChoiceField(label="Which model for new automations?")

    def __init__(self, choices: list[tuple[str, str]], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = choices


class CustomProviderForm(forms.Form):
    """A provider kind defined in the browser: the fields of one `[[providers]]` table of a
    providers file, checked by the same parser (see providers.example.toml for each field)."""

    name = forms.CharField(
        label="Name", max_length=100, widget=forms.TextInput({"placeholder": "Office vLLM"})
    )
    id = forms.SlugField(
        label="Id",
        required=False,
        max_length=64,
        help_text="Lower-case letters, digits, - and _; used in model references such as office-vllm/llama-3.1-8b. "
        "Left empty, it is made from the name.",
    )
    dialect = forms.ChoiceField(
        label="Speaks", help_text="The API it understands. Most servers speak OpenAI's Chat Completions."
    )
    endpoint = forms.URLField(
        label="Endpoint",
        assume_scheme="https",
        max_length=500,
        widget=forms.URLInput({"placeholder": "http://192.168.1.20:8000/v1"}),
        help_text="The base URL, up to and including the version path (for OpenAI-compatible servers, "
        "the part before /chat/completions).",
    )
    key_required = forms.BooleanField(label="Needs an API key", required=False, initial=True)
    key_url = forms.URLField(label="Where to find the key", required=False, assume_scheme="https")
    auth_header = forms.CharField(
        label="Key header",
        required=False,
        max_length=64,
        help_text="Leave empty for the dialect's own (Authorization for OpenAI). Some servers want api-key.",
    )
    auth_scheme = forms.CharField(
        label="Key prefix",
        required=False,
        max_length=32,
        initial="Bearer",
        help_text='Written before the key, as in "Bearer sk-…". Empty sends the bare key.',
    )
    headers = forms.CharField(
        label="Extra headers",
        required=False,
        widget=forms.Textarea({"rows": 2, "placeholder": "HTTP-Referer: https://llmhub.example.com"}),
        help_text="One per line, as Name: value. Sent with every request; not for keys (they are not encrypted).",
    )
    models = forms.CharField(
        label="Models",
        required=False,
        widget=forms.Textarea(
            {"rows": 4, "placeholder": "llama-3.1-8b-instruct\nqwen2.5-72b 131072 8192 0.10 0.20 tools"}
        ),
        help_text="One per line: the model id, optionally followed by its context window and max output "
        "tokens (else those of the catalogue or small defaults), then the input and output price in USD per "
        "1M tokens, then what it accepts besides text (optional: tools, structured_output, images, "
        "reasoning). Left empty, the models are read from the endpoint's list when you connect, and show \"price "
        'unknown" until priced.',
    )
    default_model = forms.CharField(label="Default model", required=False, max_length=200)

    def __init__(
        self,
        *args: Any,
        dialects: list[str],
        taken: set[str] = frozenset(),
        editing: str = "",
        private_network: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.private_network = private_network  # whether its endpoint may be on the hub's network
        labels = {
            "openai": "OpenAI Chat Completions (LM Studio, vLLM, llama.cpp, OpenRouter, Groq…)",
            "anthropic": "Anthropic Messages",
            "gemini": "Google Gemini",
            "ollama": "Ollama (native API)",
            "azure": "Azure OpenAI (deployments)",
        }
        # OpenAI's API first: it is what almost every server a team adds speaks.
        ordered = sorted(dialects, key=lambda d: (d != "openai", d))
        self.fields["dialect"].choices = [(d, labels.get(d, d)) for d in ordered]
        self.dialects = dialects
        self.taken = taken | {"custom"}  # "custom" is the address of this form
        self.editing = editing
        if editing:
            self.fields["id"].disabled = True
        self.definition: ProviderDefinition | None = None

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        unchanged = bool(self.editing) and data["endpoint"] == self.initial.get("endpoint")
        try:
            network.check_endpoint(data["endpoint"], self.private_network or unchanged)
        except network.AddressRefused as refused:
            self.add_error("endpoint", refused.reason)
            return data
        entry = self.entry()
        if entry is None:
            return data
        try:
            self.definition = parse_entry(entry, "custom provider", self.dialects)
        except DefinitionError as error:
            field = error.field.split(".")[0]
            field = {"input_per_1m": "models", "output_per_1m": "models"}.get(field, field)
            self.add_error(field if field in self.fields else None, error.message)
            return data
        if not self.editing and self.definition.id in self.taken:
            field = "id" if data["id"] else "name"
            self.add_error(field, f"The id {self.definition.id!r} is already taken; choose another.")
        return data

    def entry(self) -> dict[str, Any] | None:
        """The definition as a providers-file table, or None (with form errors) if a line is malformed."""
        data = self.cleaned_data
        pid = self.editing or data["id"] or slugify(data["name"])[:64]
        entry: dict[str, Any] = {
            "id": pid,
            "name": data["name"],
            "dialect": data["dialect"],
            "endpoint": data["endpoint"],
            "key_required": data["key_required"],
            "auth_scheme": data["auth_scheme"],
        }
        for name in ("key_url", "auth_header", "default_model"):
            if data[name]:
                entry[name] = data[name]
        headers = {}
        for number, line in enumerate(data["headers"].splitlines(), 1):
            if line.strip():
                name, colon, value = line.partition(":")
                if not colon or not name.strip():
                    self.add_error("headers", f"Line {number}: write Name: value.")
                    return None
                if SECRET_HEADER.search(name):
                    self.add_error(
                        "headers",
                        f"Line {number}: {name.strip()} looks like a key. Keys go in the "
                        "API key field (stored encrypted): set “Key header” to its name.",
                    )
                    return None
                headers[name.strip()] = value.strip()
        if headers:
            entry["headers"] = headers
        models = []
        for number, line in enumerate(data["models"].splitlines(), 1):
            words = line.replace(",", " ").split()
            if not words:
                continue
            # Trailing capability names ("tools images") say what the model accepts besides text.
            capabilities = []
            while words and words[-1] in CAPABILITIES:
                capabilities.insert(0, words.pop())
            if len(words) not in (1, 3, 5) or not all(p.isdigit() for p in words[1:3]):
                self.add_error(
                    "models",
                    f"Line {number}: write the model id, optionally followed by its context window and max "
                    "output tokens, then the input and output price per 1M tokens, then what it accepts "
                    f"besides text ({', '.join(sorted(FEATURES))}).",
                )
                return None
            context, max_output = (int(words[1]), int(words[2])) if len(words) > 1 else limits_for(words[0])
            model = {"id": words[0], "context_window": context, "max_output": max_output}
            if len(words) == 5:
                model |= {"input_per_1m": words[3].lstrip("$"), "output_per_1m": words[4].lstrip("$")}
            if capabilities:
                model["capabilities"] = ["chat", *capabilities]
            models.append(model)
        if models:
            entry["models"] = models
        return entry

    @staticmethod
    def initial_from(definition: dict[str, Any]) -> dict[str, Any]:
        """Form values for a stored definition (editing)."""
        lines = []
        for model in definition.get("models", []):
            prices = [model["input_per_1m"], model["output_per_1m"]] if "input_per_1m" in model else []
            accepts = [c for c in model.get("capabilities", []) if c != "chat"]
            words = [model["id"], model["context_window"], model["max_output"], *prices, *accepts]
            lines.append(" ".join(str(v) for v in words))
        return {
            **{k: v for k, v in definition.items() if k not in ("models", "headers")},
            "headers": "\n".join(f"{k}: {v}" for k, v in definition.get("headers", {}).items()),
            "models": "\n".join(lines),
        }
