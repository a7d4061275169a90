"""What the run engine yields around a run's text, and why the hub may stop a run.

`runs.stream()` yields Started(run) once the run holds its reservation, the text as Delta events
(with retry countdowns and ask-mode questions between), then exactly one Ended(run, error).
"""

from __future__ import annotations

from dataclasses import dataclass

from usage.models import Run


@dataclass(frozen=True)
class Started:
    run: Run


@dataclass(frozen=True)
class Ended:
    """The run's final state, its usage settled. `error` says why it did not complete (a
    ProviderError, a BudgetRefused or a Stop); `settled` is False when the usage could not be
    written (the database refused), which a caller must report rather than hide."""

    run: Run
    error: Exception | None = None
    finish_reason: str = ""
    settled: bool = True

    @property
    def completed(self) -> bool:
        return self.run.status == Run.Status.COMPLETED and self.settled


class Stop(Exception):
    """The hub stopped a run (not the provider): the status it ends with and what the user reads."""

    status = Run.Status.FAILED
    action = "retry"

    def message(self, text_kept: bool) -> str:
        return f"{self} The text so far is kept." if text_kept else str(self)


class Cancelled(Stop):
    status = Run.Status.CANCELLED

    def __init__(self, by: str = "") -> None:
        who = f" by {by}" if by else ""
        super().__init__(f"Cancelled{who}.")


class Interrupted(Stop):
    """The server shut down (or had been killed) while the run was under way."""

    status = Run.Status.INTERRUPTED

    def __init__(self, started: bool = True) -> None:
        if started:
            super().__init__("The server restarted while this run was streaming.")
        else:
            super().__init__("The server was restarting, so this run did not start. Nothing was charged.")


class TimeLimit(Stop):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"The run reached its time limit of {_duration(seconds)}.")


class DatabaseUnavailable(Stop):
    """The database refused the write a run needs to start (its reservation): nothing was sent."""

    retry_after = 5  # seconds

    def __init__(self) -> None:
        super().__init__(
            "The database is busy or unavailable, so the budget cannot be checked and the run did not "
            f"start. Try again in {self.retry_after} seconds."
        )


class HubError(Stop):
    """A failure of the hub itself (a bug, the database): logged with its traceback."""

    def __init__(self, what: str) -> None:
        super().__init__(what)


def _duration(seconds: float) -> str:
    if seconds >= 120 and seconds % 60 == 0:
        return f"{int(seconds // 60)} minutes"
    whole = max(1, round(seconds))
    return "1 second" if whole == 1 else f"{whole} seconds"
