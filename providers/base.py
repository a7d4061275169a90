"""The one interface every provider adapter implements, and the plain data it speaks.

An adapter translates between these dataclasses and one provider's wire format. It gets a
ProviderConfig (endpoint, decrypted credentials, headers, model catalogue with prices), never
touches the ORM or settings, never logs, and raises only `providers.errors.ProviderError`s.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from operator import attrgetter
from typing import TYPE_CHECKING, Any, ClassVar

from providers import pricing
from providers.chat import (
    CAPABILITY_NAMES,
    Message,
    ResponseFormat,
    Tool,
    ToolCall,
    ToolChoice,
    capabilities_needed,
    features_label,
    fit_within,
    json_value,
    options_from_json,
)
from providers.crypto import Secret
from providers.errors import ModelNotAvailable, UnexpectedResponse, UnsupportedRequest

if TYPE_CHECKING:
    from providers.embedding import EmbeddingRequest, Embeddings
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
    REASONING = "reasoning"  # also: takes reasoning_effort (a thinking budget)
    CODE = "code"
    LONG_CONTEXT = "long_context"
    EMBEDDINGS = "embeddings"  # an embedding model (POST /v1/embeddings), not a chat model


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
    # Cached prompt tokens, read from and written to the provider's cache; None: priced as input.
    cache_read_per_1m: Decimal | None = None
    cache_write_per_1m: Decimal | None = None
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

    @property
    def embedding_only(self) -> bool:
        """An embedding model that does not generate text: POST /v1/embeddings only."""
        return TaskType.EMBEDDINGS in self.capabilities and TaskType.CHAT not in self.capabilities

    @property
    def features(self) -> str:  # for the model pickers: "tools, JSON schema, images"
        return features_label(self.capabilities)


LONG_CONTEXT_TOKENS = 200_000


@dataclass(frozen=True)
class TokenCount:
    """Tokens of one generation. `input` counts every prompt token, cached ones included;
    `output` every generated one, reasoning included. The others say how many of those were
    read from or written to the prompt cache, and how many were reasoning."""

    input: int
    output: int
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0


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
    """One request, whatever the provider. The options after `stream` are stored with a run as
    JSON (`options_json`): a new option is a field here, in the OpenAI format module and in the
    adapters that can send it, nothing else."""

    model: str
    messages: tuple[Message, ...]
    max_tokens: int | None = None
    temperature: float | None = None
    stream: bool = False
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: Mapping[str, int] | None = None
    n: int = 1
    logprobs: bool = False
    top_logprobs: int | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: str | None = None
    verbosity: str | None = None
    prediction: Mapping[str, Any] | None = None

    @property
    def system_prompt(self) -> str:
        return "\n\n".join(m.named_text() for m in self.messages if m.role == "system")

    @property
    def conversation(self) -> tuple[Message, ...]:
        return tuple(m for m in self.messages if m.role != "system")

    def options_given(self) -> tuple[str, ...]:
        """The names of the options this request sets to something other than their default."""
        return self._options_given

    @cached_property
    def _options_given(self) -> tuple[str, ...]:
        # Found once: the request is frozen, and it is asked several times a request (an adapter's
        # payload asks once for each option it passes). Most requests set none: one comparison.
        values = _option_values(self)
        if values == _DEFAULT_VALUES:
            return ()
        return tuple(
            name for (name, default), value in zip(_OPTION_DEFAULTS, values, strict=True) if value != default
        )

    def options_json(self) -> dict[str, Any]:
        return {name: json_value(getattr(self, name)) for name in self.options_given()}

    @classmethod
    def from_stored(
        cls, model: str, messages: Sequence[Mapping[str, Any]], options: Mapping[str, Any], **given: Any
    ) -> GenerationRequest:
        """A request rebuilt from what a run stored: its messages and `options_json()`."""
        return cls(
            model=model,
            messages=tuple(Message.from_json(m) for m in messages),
            **options_from_json(options),
            **given,
        )


_CORE = {"model", "messages", "max_tokens", "temperature", "stream"}  # a run's own columns, not options
_OPTION_DEFAULTS = tuple((f.name, f.default) for f in fields(GenerationRequest) if f.name not in _CORE)
_option_values = attrgetter(*(name for name, _ in _OPTION_DEFAULTS))
_DEFAULT_VALUES = tuple(default for _, default in _OPTION_DEFAULTS)


@dataclass(frozen=True)
class GenerationResponse:
    content: str
    usage: TokenCount
    model: str
    finish_reason: FinishReason
    tool_calls: tuple[ToolCall, ...] = ()


# Not frozen (nothing changes one all the same): a frozen dataclass sets each field through
# object.__setattr__, and one is made for every piece of every stream.
@dataclass(slots=True)
class Delta:
    """A piece of generated text, as it arrives; `choice` tells the answers apart when n > 1."""

    text: str
    choice: int = 0
    logprobs: tuple[Mapping[str, Any], ...] = ()  # OpenAI-shaped, for each token of the text


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a tool call: the first piece of call `index` carries its id and name, every
    piece a fragment of its JSON arguments."""

    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""
    choice: int = 0


@dataclass(frozen=True)
class Finished:
    """The last event of a stream: the provider's own token counts and why it stopped (for each
    choice, when there were several). `stop_sequence` is the one of the request's stop sequences
    that stopped it, where the provider says so (Anthropic does; OpenAI, Gemini and Ollama report
    a stop sequence as an ordinary stop)."""

    usage: TokenCount
    finish_reason: FinishReason
    model: str
    choices: Mapping[int, FinishReason] = field(default_factory=dict)
    stop_sequence: str = ""


StreamEvent = Delta | ToolCallDelta | Finished


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
    """One wire dialect (openai, anthropic, ...). One instance talks to one configured provider.

    A dialect implements `auth_headers`, `raise_error` (a non-2xx answer as a ProviderError) and
    `stream`; it names the request options it can send in `accepts`. Everything else is shared.
    """

    dialect: ClassVar[str]
    kind_name: ClassVar[str]  # "OpenAI": the name of the kind, for cards before any is configured
    default_endpoint: ClassVar[str]
    credential_fields: ClassVar[tuple[CredentialField, ...]]
    validation_path: ClassVar[str] = "/models"  # a free GET that needs a good key
    # The options of GenerationRequest this dialect sends or translates; any other is refused.
    accepts: ClassVar[frozenset[str]] = frozenset()
    # Tokens a provider adds to the prompt when tools are offered (its tool-use instructions).
    tool_prompt_tokens: ClassVar[int] = 0
    # What embed() takes ("text", "tokens": providers/embedding.py); empty: the dialect does not embed.
    embedding_inputs: ClassVar[frozenset[str]] = frozenset()

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

    def raise_for_status(self, status: int, headers: Mapping[str, str], body: str) -> None:
        """Map a non-2xx response to the matching ProviderError, from its JSON body when it has one."""
        try:
            parsed = self.http.parse_json(body, status)
        except UnexpectedResponse:
            parsed = {}
        self.raise_error(status, headers, parsed if isinstance(parsed, dict) else {}, body)

    @abstractmethod
    def raise_error(self, status: int, headers: Mapping[str, str], parsed: dict, body: str = "") -> None:
        """Raise the ProviderError for this status and parsed error body (also for errors sent
        inside a stream). Must raise."""

    async def validate_credentials(self, config: ProviderConfig) -> None:
        """A request to the free model-list endpoint; returns on success, raises a ProviderError."""
        await self.http_for(config).get_json(
            self.validation_path_for(config), deadline=config.validation_timeout
        )

    def validation_path_for(self, config: ProviderConfig) -> str:
        return self.validation_path

    async def generate(self, request: GenerationRequest) -> GenerationResponse:
        """The whole answer at once: the stream, drained (so the output cap and cancelling work
        the same way for both)."""
        text: list[str] = []
        calls: dict[int, list[str]] = {}
        async for event in self.stream(request):
            if isinstance(event, Delta) and event.choice == 0:
                text.append(event.text)
            elif isinstance(event, ToolCallDelta) and event.choice == 0:
                call = calls.setdefault(event.index, ["", "", ""])
                call[0], call[1] = call[0] or event.id, call[1] or event.name
                call[2] += event.arguments
            elif isinstance(event, Finished):
                tool_calls = tuple(ToolCall(*calls[index]) for index in sorted(calls))
                return GenerationResponse(
                    "".join(text), event.usage, event.model, event.finish_reason, tool_calls
                )
        raise UnexpectedResponse(self.display_name, 200, detail="the stream ended without a final event")

    @abstractmethod
    def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        """Yield Delta and ToolCallDelta events as they arrive, then exactly one Finished event.
        Call `self.check(request)` before sending anything."""

    async def embed(self, request: EmbeddingRequest) -> Embeddings:
        """The vectors of the request's inputs, in their order; dialects that name what they take in
        `embedding_inputs` implement it."""
        raise UnsupportedRequest(self.display_name, f"{self.provider_id}/{request.model}", ["embeddings"])

    # ---- what a model accepts
    @classmethod
    def refusals(cls, request: GenerationRequest, info: ModelInfo) -> list[str]:
        """What of this request the model cannot honour, each named as the client named it
        ("logit_bias", "audio input"); empty when it can all be sent or translated."""
        # Asked 3 times a request, nearly always to find nothing: loops, not comprehensions (each
        # one a function made and called), and nothing to deduplicate in an empty list.
        given = request.options_given()
        refused = [name for name in given if name not in cls.accepts] if given else []
        for capability in capabilities_needed(request):
            if capability not in info.capabilities:
                refused.append(CAPABILITY_NAMES[capability])
        for reason in cls.dialect_refusals(request, info):
            if reason not in refused:
                refused.append(reason)
        if info.embedding_only:
            refused.append("text generation (it is an embedding model: POST /v1/embeddings)")
        return list(dict.fromkeys(refused)) if refused else refused

    @classmethod
    def dialect_refusals(cls, request: GenerationRequest, info: ModelInfo) -> list[str]:
        """Refusals that depend on a value, not just on a field being set (a dialect's own rules)."""
        return []

    def check(self, request: GenerationRequest) -> None:
        """Raise UnsupportedRequest when the model cannot honour all of the request."""
        refused = self.refusals(request, self.model_info(request.model))
        if refused:
            raise UnsupportedRequest(self.display_name, f"{self.provider_id}/{request.model}", refused)

    @classmethod
    def image_tokens(cls, model: str, size: tuple[int, int] | None, detail: str) -> int:
        """Input tokens of an image here (an upper bound for an unknown size); by default Anthropic's rule."""
        if size is None:
            return 1600
        width, height = fit_within(size, 1568)
        return min(1600, max(1, math.ceil(width * height / 750)))

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
                    raise self._wrong_shape() from error
                if not _well_formed(event):
                    raise self._wrong_shape()
                yield event
        finally:
            await events.aclose()

    def _wrong_shape(self) -> UnexpectedResponse:
        return UnexpectedResponse(
            self.display_name, 200, problem="its answer did not have the expected shape"
        )

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


def _well_formed(event: StreamEvent) -> bool:
    """Whether an event's text fields are text (a provider's JSON may hold a number or a list)."""
    if isinstance(event, Delta):
        return isinstance(event.text, str)
    if isinstance(event, ToolCallDelta):
        return all(isinstance(value, str) for value in (event.id, event.name, event.arguments))
    return True
