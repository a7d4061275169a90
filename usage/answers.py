"""What a stream has said so far, put together: each choice's text and tool calls, and the
logprobs of the first choice. The run keeps the first choice's text as its output and the rest
as its `answer` (JSON), which the API and the run page read back."""

from __future__ import annotations

from typing import Any

from providers.base import Delta, FinishReason, ToolCallDelta


class Answer:
    def __init__(self) -> None:
        self.texts: dict[int, list[str]] = {0: []}
        self.calls: dict[int, dict[int, list[str]]] = {}  # choice -> call index -> [id, name, arguments]
        self.logprobs: list[Any] = []
        self.finishes: dict[int, FinishReason] = {}
        self.stop_sequence = ""  # the stop sequence that ended it, where the provider said which

    def add(self, event: Delta | ToolCallDelta) -> str:
        """Take in one event; returns the generated text it carried (to count output tokens)."""
        if isinstance(event, Delta):
            texts = self.texts.get(event.choice)
            if texts is None:  # (not setdefault: it would make a list for every piece)
                texts = self.texts[event.choice] = []
            texts.append(event.text)
            if event.logprobs and event.choice == 0:
                self.logprobs.extend(event.logprobs)
            return event.text
        call = self.calls.setdefault(event.choice, {}).setdefault(event.index, ["", "", ""])
        call[0], call[1] = call[0] or event.id, call[1] or event.name
        call[2] += event.arguments
        return event.name + event.arguments

    @property
    def shown(self) -> bool:
        """Whether anything reached the client yet."""
        return any(self.texts.values()) or bool(self.calls)

    def text(self, choice: int = 0) -> str:
        return "".join(self.texts.get(choice, []))

    def generated(self) -> str:
        """All the generated text, tool-call arguments included."""
        texts = ["".join(parts) for parts in self.texts.values()]
        calls = [name + arguments for calls in self.calls.values() for _, name, arguments in calls.values()]
        return "".join(texts + calls)

    def tool_calls(self, choice: int = 0) -> list[dict[str, str]]:
        found = self.calls.get(choice, {})
        return [dict(zip(("id", "name", "arguments"), found[index], strict=True)) for index in sorted(found)]

    def stored(self) -> dict[str, Any]:
        """The JSON the run keeps beside its output text (empty for a plain text answer)."""
        stored: dict[str, Any] = {}
        if calls := self.tool_calls(0):
            stored["tool_calls"] = calls
        if self.logprobs:
            stored["logprobs"] = self.logprobs
        if self.stop_sequence:
            stored["stop_sequence"] = self.stop_sequence
        others = sorted((set(self.texts) | set(self.calls)) - {0})
        if others:
            stored["choices"] = [
                {
                    "index": choice,
                    "content": self.text(choice),
                    "tool_calls": self.tool_calls(choice),
                    "finish_reason": str(self.finishes.get(choice, FinishReason.OTHER)),
                }
                for choice in others
            ]
        return stored
