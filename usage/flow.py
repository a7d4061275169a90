"""One run in motion, as the engine (usage/runs.py) sees it: the attempt it is on, the text it has
delivered, what the provider reported, and how it ends."""

from __future__ import annotations

from dataclasses import dataclass, field

from providers.base import TokenCount
from providers.errors import ProviderError
from usage.answers import Answer
from usage.ceiling import Limits, OutputCeiling
from usage.clock import RunClock
from usage.events import Stop
from usage.models import Run


@dataclass
class Flow:
    run: Run
    clock: RunClock
    started: bool = False  # holds its reservation and is marked streaming
    ended: bool = False
    limits: Limits | None = None
    provider: str = ""  # the display name of the provider being tried
    ceiling: OutputCeiling | None = None
    answer: Answer | None = None  # what was delivered, put together (text, tool calls, choices)
    usage: TokenCount | None = None  # the provider's own final count
    reached: bool = False  # the provider answered: the prompt is billed
    finish_reason: str = ""
    error: Exception | None = None  # why it did not complete (for callers: Ended.error)
    failures: list[Exception] = field(default_factory=list)  # each attempt that gave up, in order
    keeper: object | None = None  # the lease keeper (usage.leases.Keeper) once started
    # The provider that answered: its circuit is noted as working when the run settles.
    answered_by: str | None = None

    @property
    def text(self) -> str:
        """The first choice's text delivered so far (the run's output)."""
        return self.answer.text() if self.answer else ""

    @property
    def shown(self) -> bool:
        """Whether anything (text or a tool call) reached the client."""
        return bool(self.answer and self.answer.shown)

    @property
    def reason(self) -> str:
        """What went wrong last: a provider's error or a budget's refusal, as the user reads it."""
        return str(self.failures[-1]) if self.failures else ""

    @property
    def provider_error(self) -> ProviderError | None:
        return next((f for f in reversed(self.failures) if isinstance(f, ProviderError)), None)

    def end(self, status: str, message: str = "", action: str = "", error: Exception | None = None) -> None:
        self.run.status, self.ended = status, True
        if message:
            self.run.error_message = message
        self.run.error_action = action or self.run.error_action
        self.error = error

    def stop(self, stop: Stop) -> None:
        """Ended by the hub: cancelled, interrupted, out of time, or a failure of the hub itself."""
        kept = self.shown
        self.end(stop.status, stop.message(kept), action="continue" if kept else stop.action, error=stop)
