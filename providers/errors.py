"""Typed provider failures, each carrying the message a user sees and what they can do about it.

Adapters raise these and nothing else. An error never holds a credential: the HTTP layer redacts
secrets from provider bodies before an error is built.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.utils import timezone


class ProviderError(Exception):
    """Base class. `user_message` is what a person sees; `retryable` tells the retry loop."""

    retryable = False
    action = "retry"  # what the UI offers: re-enter-key, retry, pick-model, provider-settings

    def __init__(self, provider: str, detail: str = "") -> None:
        self.provider = provider
        self.detail = detail
        super().__init__(self.user_message)

    @property
    def user_message(self) -> str:
        return f"{self.provider} failed. Try again in a moment."

    def __str__(self) -> str:
        return self.user_message


class InvalidCredentials(ProviderError):
    action = "re-enter-key"

    @property
    def user_message(self) -> str:
        return f"Your {self.provider} API key is invalid. Please check and try again."


class KeyUnusable(ProviderError):
    """A saved key that is not sent: no configured encryption key reads it, or the provider now
    points elsewhere than the endpoint and headers it was saved for."""

    action = "re-enter-key"

    def __init__(self, provider: str, unreadable: bool = False) -> None:
        self.unreadable = unreadable
        super().__init__(provider)

    @property
    def user_message(self) -> str:
        if self.unreadable:
            return (
                f"The saved {self.provider} key cannot be read with the configured encryption keys: "
                "re-enter the key."
            )
        return (
            f"The saved {self.provider} key was saved for another endpoint: re-enter the key. "
            "A saved key is only sent to the endpoint it was saved for."
        )


class RateLimited(ProviderError):
    retryable = True

    def __init__(self, provider: str, retry_after: float | None = None, detail: str = "") -> None:
        self.retry_after = retry_after
        super().__init__(provider, detail)

    @property
    def user_message(self) -> str:
        if self.retry_after is None:
            return f"{self.provider} rate limit hit. Try again in a moment."
        return f"{self.provider} rate limit hit. Try again in {_seconds(self.retry_after)}."

    def retrying_message(self, seconds: float) -> str:
        return f"{self.provider} rate limit hit. Retrying in {_seconds(seconds)}..."


class ModelNotAvailable(ProviderError):
    action = "pick-model"

    def __init__(self, provider: str, model: str, suggestion: str = "", detail: str = "") -> None:
        self.model = model
        self.suggestion = suggestion
        super().__init__(provider, detail)

    @property
    def user_message(self) -> str:
        if self.suggestion:
            return f"{self.model} is unavailable right now. Try {self.suggestion} instead?"
        return f"{self.model} is unavailable right now. Pick another {self.provider} model."


class QuotaExceeded(ProviderError):
    action = "provider-settings"

    def __init__(self, provider: str, limit_type: str = "usage", detail: str = "") -> None:
        self.limit_type = limit_type
        super().__init__(provider, detail)

    @property
    def user_message(self) -> str:
        return (
            f"You've hit your {self.provider} {self.limit_type} cap. "
            "Upgrade your plan or use another provider."
        )


class NetworkError(ProviderError):
    """No answer at the transport level. `endpoint` (without credentials) names where the hub
    tried; `refused` is true when something answered "connection refused" there."""

    retryable = True

    def __init__(self, provider: str, detail: str = "", endpoint: str = "", refused: bool = False) -> None:
        self.endpoint = endpoint
        self.refused = refused
        super().__init__(provider, detail)

    @property
    def user_message(self) -> str:
        if self.refused and self.endpoint:
            return f"Connection refused by {self.endpoint}. Is {self.provider} running there?"
        if self.endpoint:
            return f"Can't reach {self.provider} at {self.endpoint}. Check the address and the network."
        return f"Can't reach {self.provider}. Check your internet connection."


class StreamInterrupted(NetworkError):
    """The connection closed before the provider's end-of-stream event: never a success."""

    @property
    def user_message(self) -> str:
        return f"{self.provider} stopped answering mid-response."


class EndpointRefused(ProviderError):
    """The hub's network policy forbids the endpoint's address (providers/network.py)."""

    action = "provider-settings"

    def __init__(self, provider: str, reason: str) -> None:
        self.reason = reason
        super().__init__(provider)

    @property
    def user_message(self) -> str:
        return f"{self.provider} was not contacted: {self.reason}"


class Timeout(ProviderError):
    retryable = True

    def __init__(self, provider: str, duration: float, detail: str = "") -> None:
        self.duration = duration
        super().__init__(provider, detail)

    @property
    def user_message(self) -> str:
        return f"{self.provider} did not answer within {_seconds(self.duration)}. Try again."


class Stalled(Timeout):
    """Connected, but no new text for too long: keep-alives, empty chunks and trickles do not count."""

    @property
    def user_message(self) -> str:
        return f"{self.provider} sent no text for {_seconds(self.duration)}; the attempt was stopped."


class UnexpectedResponse(ProviderError):
    """An answer the hub cannot use: an unknown status, or (with `problem`, what the hub noticed)
    a web page, a body of the wrong shape, a count that is not a count, a line over its limit."""

    def __init__(
        self, provider: str, status: int, body: str = "", detail: str = "", problem: str = ""
    ) -> None:
        self.status = status
        self.body = body[:2000]
        self.problem = problem
        super().__init__(provider, detail)

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        # 5xx and Anthropic's 529 "overloaded" are the provider's own trouble and pass.
        return self.status >= 500

    @property
    def user_message(self) -> str:
        if self.problem:
            return f"Unexpected response from {self.provider}: {self.problem}."
        if self.status >= 500:
            return f"{self.provider} is having trouble (HTTP {self.status}). Try again in a moment."
        hint = f": {_short(self.detail)}" if self.detail else ""
        return f"{self.provider} rejected the request (HTTP {self.status}){hint}"


class CircuitOpen(ProviderError):
    """A provider skipped by the circuit breaker after failing again and again (providers/breaker.py):
    no request is sent until the cooling-off period ends."""

    def __init__(self, provider: str, failures: int, until: datetime, detail: str = "") -> None:
        self.failures = failures
        self.until = until
        super().__init__(provider, detail)

    @property
    def retry_after(self) -> float:
        return max(1.0, (self.until - timezone.now()).total_seconds())

    @property
    def user_message(self) -> str:
        at = timezone.localtime(self.until).strftime("%H:%M")
        return (
            f"{self.provider} failed {self.failures} times in a row; skipped until {at}. "
            "Try again then, or pick another model."
        )


class UnsupportedRequest(ProviderError):
    """The request asks for something this model cannot do (tools, a field the provider lacks):
    refused by name before anything is sent, so another model may still take it."""

    action = "pick-model"

    def __init__(self, provider: str, model: str, refused: list[str], detail: str = "") -> None:
        self.model, self.refused = model, refused
        super().__init__(provider, detail)

    @property
    def user_message(self) -> str:
        them = "it" if len(self.refused) == 1 else "them"
        return f"{self.model} does not accept {_listed(self.refused)}. Send the request without {them} or pick another model."


class UnpricedModel(Exception):
    """A model with no known price: never charged as $0, so asking for its cost is an error."""

    def __init__(self, model: str) -> None:
        self.model = model
        super().__init__(f"{model} has no known price. An admin can set one in Settings.")


# What of a provider's own error text a user sees: one line, this long at most. More would let the
# answer of whatever listens at an endpoint be read through the hub.
REASON_CHARS = 120


def _short(text: str) -> str:
    line = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return line if len(line) <= REASON_CHARS else line[: REASON_CHARS - 1].rstrip() + "…"


def _seconds(value: float | Decimal) -> str:
    whole = max(1, round(float(value)))
    return "1 second" if whole == 1 else f"{whole} seconds"


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
