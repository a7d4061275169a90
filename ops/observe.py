"""What the run engine tells operators: one call when a run ends (its metrics and its log line), and
one each for a retry and a fallback. Called by usage.runs; never touches the database."""

from __future__ import annotations

import logging

from llmhub import afterwards
from ops import logs, metrics
from usage.models import Run

log = logging.getLogger("llmhub.runs")


def outcome(run: Run) -> str:
    if run.refusal is not None:
        return "refused"
    return run.status


def run_finished(run: Run) -> None:
    """Count the ended run, its tokens and cost, time its first token and its whole, and write its
    line: `run <uuid> completed openai/gpt-4o ...` with every field as JSON extras. Once the API's
    answer is sent, when the run is an API request's (llmhub/afterwards.py); else at once. The run
    is settled by then: nothing of it changes any more, and nothing here reads the database."""
    afterwards.later(_finished, run)


def _finished(run: Run) -> None:
    provider, _, model = (run.model_used or run.model_requested).partition("/")
    team = run.team.name if Run.team.is_cached(run) else str(run.team_id)
    ended = outcome(run)
    metrics.child(metrics.RUNS, provider, model, ended).inc()
    ttft = _seconds(run.started_at, run.first_token_at)
    total = _seconds(run.started_at, run.finished_at)
    if ttft is not None:
        metrics.child(metrics.TIME_TO_FIRST_TOKEN, provider, model).observe(ttft)
    if total is not None:
        metrics.child(metrics.RUN_SECONDS, provider, model).observe(total)
    if run.input_tokens:
        metrics.child(metrics.TOKENS, provider, model, team, "input").inc(run.input_tokens)
    if run.output_tokens:
        metrics.child(metrics.TOKENS, provider, model, team, "output").inc(run.output_tokens)
    if run.cost_usd:
        metrics.child(metrics.COST, provider, model, team).inc(float(run.cost_usd))
    if log.isEnabledFor(logging.INFO):
        if logs.structured():
            fields = _fields(run, provider, model, team, ended, ttft, total)
        else:  # as a JSON line, the text line carries the run's request id, not the current one
            fields = {"request_id": run.request_id or None}
        log.info("run %s %s %s/%s", run.uuid, ended, provider, model, extra=fields)


def _fields(run: Run, provider: str, model: str, team: str, ended: str, ttft, total) -> dict:
    key = run.api_key.masked if run.api_key_id and Run.api_key.is_cached(run) else None
    return {
        "event": "run",
        "request_id": run.request_id or None,
        "run_id": str(run.uuid),
        "team": team,
        "user_id": run.user_id,
        "api_key_id": run.api_key_id,
        "api_key": key,
        "provider": provider,
        "model": model,
        "status": ended,
        "input_tokens": run.input_tokens,
        "output_tokens": run.output_tokens,
        "cost_usd": str(run.cost_usd) if run.cost_usd is not None else None,
        "time_to_first_token_ms": round(ttft * 1000) if ttft is not None else None,
        "duration_ms": round(total * 1000) if total is not None else None,
        "attempts": len(run.attempts),
        "error": run.error_message or None,
    }


def retried(ref: str) -> None:
    metrics.child(metrics.RETRIES, ref.partition("/")[0]).inc()


def fell_back(source: str, target: str) -> None:
    metrics.child(metrics.FALLBACKS, source.partition("/")[0], target.partition("/")[0]).inc()


def _seconds(start, end) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def rate_limited(scope: str, kind: str) -> None:
    """Count a request refused by a rate limit: of an API key or a team, on requests or tokens."""
    metrics.child(metrics.RATE_LIMITED, scope, kind).inc()
