"""The one interface every provider adapter implements, and the plain data it speaks.

An adapter translates between these dataclasses and one provider's wire format. It gets a
ProviderConfig (endpoint, decrypted credentials, headers, model catalogue with prices), never
touches the ORM or settings, never logs, and raises only `providers.errors.ProviderError`s.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar

from providers import pricing
from providers.crypto import Secret
from providers.errors import ModelNotAvailable, UnexpectedResponse
from providers.http import ProviderHTTP

# More tokens than any model reads or writes in one request, by far: a count above this is garbage.
ABSURD_TOKENS = 100_000_000
# What a provider's JSON of the wrong shape raises as an adapter reads it ("choices": "none" ...).
SHAPE_ERRORS = (AttributeError, KeyError, IndexError, TypeError, ValueError)


@dataclass(frozen=True)
class CredentialField:
    """One setting a provider needs, described so that a form can be generated from it."""

    name: str
    label: str
    secret: bool = True
    required: bool = True
    help_text: str = ""
    help_url: str = ""  # "Where to find your key"
    placeholder: str = ""
    # Only the vendor's own service has it (OpenAI's organization id): not asked of compatible servers.
    vendor_only: bool = False


class TaskType(StrEnum):
    CHAT = "chat"
    REASONING = "reasoning"
    CODE = "code"
    LONG_CONTEXT = "long_context"


@dataclass(frozen=True)
class ModelInfo:
    """A catalogue entry. Prices are USD per 1M tokens; None means unpriced (never free)."""

    id: str
    display_name: str
    context_window: int
    max_output: int
    supports_streaming: bool = True
    input_per_1m: Decimal | None = None
    output_per_1m: Decimal | None = None
    capabilities: frozenset[str] = frozenset({TaskType.CHAT, TaskType.CODE})
    # Reasoning models (OpenAI's o-series) take max_completion_tokens and no temperature.
    reasoning: bool = False

    @property
    def priced(self) -> bool:
        return self.input_per_1m is not None and self.output_per_1m is not None

    def can_do(self, task: TaskType) -> bool:
        if task == TaskType.LONG_CONTEXT:
            return self.context_window >= LONG_CONTEXT_TOKENS
        return task in self.capabilities


LONG_CONTEXT_TOKENS = 200_000


@dataclass(frozen=True)
class Message:
    role: str  # "system", "user" or "assistant"
    content: str


@dataclass(frozen=True)
class TokenCount:
    input: int
    output: int


def reported_tokens(provider: str, name: str, value: Any) -> int:
    """A token count from a provider's answer (0 when absent), or UnexpectedResponse: negative,
    fractional, absurd or non-numeric counts are never charged."""
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= ABSURD_TOKENS:
        raise UnexpectedResponse(
            provider, 200, problem=f"its usage field {name} is {value!r}, not a token count"
        )
    return value


class FinishReason(StrEnum):
    STOP = "stop"
    LENGTH = "length"
    CONTENT_FILTER = "content_filter"
    TOOL_CALLS = "tool_calls"
    OTHER = "other"


@dataclass(frozen=True)
class GenerationRequest:
    model: str
    messages: tuple[Message, ...]
    max_tokens: int | None = None
    temperature: float | None = None
    stream: bool = False

    @property
    def system_prompt(self) -> str:
        return "\n\n".join(m.content for m in self.messages if m.role == "system")

    @property
    def conversation(self) -> tuple[Message, ...]:
        return tuple(m for m in self.messages if m.role != "system")


@dataclass(frozen=True)
class GenerationResponse:
    content: str
    usage: TokenCount
    model: str
    finish_reason: FinishReason


@dataclass(frozen=True)
class Delta:
    """A piece of generated text, as it arrives."""

    text: str


@dataclass(frozen=True)
class Finished:
    """The last event of a stream: the provider's own token counts and why it stopped."""

    usage: TokenCount
    finish_reason: FinishReason
    model: str


StreamEvent = Delta | Finished


@dataclass(frozen=True)
class ProviderConfig:
    """Everything an adapter needs to talk to one configured provider."""

    provider_id: str
    display_name: str
    endpoint: str
    credentials: Mapping[str, Secret | str] = field(default_factory=dict, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    # Where the key goes, when a server wants it elsewhere than the dialect's default ("api-key").
    auth_header: str = ""
    auth_scheme: str = "Bearer"
    models: tuple[ModelInfo, ...] = ()
    default_model: str = ""
    validation_timeout: float = 5.0
    request_timeout: float = 600.0
    # May connect to loopback and private addresses (providers/network.py): a site admin set it.
    private_network: bool = False

    def credential(self, name: str) -> str:
        """The plaintext value of a credential, or "" when it is not set."""
        value = self.credentials.get(name, "")
        return value.reveal() if isinstance(value, Secret) else value

    def secrets(self) -> list[str]:
        return [v.reveal() for v in self.credentials.values() if isinstance(v, Secret)]


class ProviderAdapter(ABC):
    """One wire dialect (openai, anthropic, ...). One instance talks to one configured provider."""

    dialect: ClassVar[str]
    kind_name: ClassVar[str]  # "OpenAI": the name of the kind, for cards before any is configured
    default_endpoint: ClassVar[str]
    credential_fields: ClassVar[tuple[CredentialField, ...]]

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.http = self.http_for(config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.config.provider_id}>"

    # ---- identity
    @property
    def provider_id(self) -> str:
        return self.config.provider_id

    @property
    def display_name(self) -> str:
        return self.config.display_name

    # ---- wire
    def http_for(self, config: ProviderConfig) -> ProviderHTTP:
        return ProviderHTTP(
            provider=config.display_name,
            base_url=config.endpoint or self.default_endpoint,
            headers={**self.auth_headers(config), **config.headers},
            secrets=config.secrets(),
            raise_for_status=self.raise_for_status,
            timeout=config.request_timeout,
            private_network=config.private_network,
        )

    @abstractmethod
    def auth_headers(self, config: ProviderConfig) -> dict[str, str]:
        """The headers that carry the credentials (and API version) on every request."""

    @abstractmethod
    def raise_for_status(self, status: int, headers: Mapping[str, str], body: str) -> None:
        """Map a non-2xx response to the matching ProviderError. Must raise."""

    @abstractmethod
    async def validate_credentials(self, config: ProviderConfig) -> None:
        """A request to the free model-list endpoint; returns on success, raises a ProviderError."""

    @abstractmethod
    async def generate(self, request: GenerationRequest) -> GenerationResponse: ...

    @abstractmethod
    def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        """Yield Delta events as text arrives, then exactly one Finished event."""

    async def events(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        """stream(), with an answer of the wrong shape (valid JSON the adapter cannot read) reported
        as an unexpected response from the provider. The run engine reads this."""
        events = self.stream(request)
        try:
            while True:
                try:
                    event = await anext(events)
                except StopAsyncIteration:
                    return
                except SHAPE_ERRORS as error:
                    raise UnexpectedResponse(
                        self.display_name, 200, problem="its answer did not have the expected shape"
                    ) from error
                if isinstance(event, Delta) and not isinstance(event.text, str):
                    raise UnexpectedResponse(
                        self.display_name, 200, problem="its answer did not have the expected shape"
                    )
                yield event
        finally:
            await events.aclose()

    @classmethod
    def catalogue(cls, credentials: Mapping[str, str]) -> list:
        """Models that follow from the credentials themselves (Azure's deployments); most have none."""
        return []

    def is_chat_model(self, model_id: str) -> bool:
        """Whether a listed model generates text (lists also hold embedding, speech, image models)."""
        return True

    async def fetch_model_ids(self) -> list[str]:
        """The model ids the provider lists for these credentials (for catalogue refreshes)."""
        raise NotImplementedError

    # ---- catalogue and prices
    def list_models(self) -> list[ModelInfo]:
        return list(self.config.models)

    @property
    def default_model(self) -> str:
        return self.config.default_model or (self.config.models[0].id if self.config.models else "")

    def model_info(self, model: str) -> ModelInfo:
        for info in self.config.models:
            if info.id == model:
                return info
        raise ModelNotAvailable(self.display_name, model)

    def pricing(self, model: str) -> pricing.ModelPricing:
        info = self.model_info(model)
        return pricing.ModelPricing.of(info)

    def estimate_cost(self, model: str, tokens: TokenCount) -> Decimal:
        """USD for these token counts; raises UnpricedModel rather than guess $0."""
        return self.pricing(model).cost(tokens.input, tokens.output)
