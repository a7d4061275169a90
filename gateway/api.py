"""The OpenAI-compatible HTTP API: GET /v1/models and POST /v1/chat/completions.

A request becomes a Run exactly like one started in the browser (usage.runs): the same estimate,
budget reservation, retries, fallback, usage row and audit entries. This module only translates.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from accounts.teams import default_model_for, providers_for
from gateway import keys
from gateway import openai_format as fmt
from gateway.models import ApiKey, ModelAlias
from providers.base import Delta
from providers.errors import NetworkError, RateLimited, Timeout
from providers.registry import registry
from usage import runs
from usage.models import Run


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None, headers: dict | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.type, self.code, self.param, self.headers = (
            status,
            type_,
            code,
            param,
            headers or {},
        )

    def response(self) -> JsonResponse:
        body = fmt.error_body(str(self), self.type, self.code, self.param)
        return JsonResponse(body, status=self.status, headers=self.headers)


def _authenticate(request: HttpRequest) -> ApiKey:
    key = keys.authenticate(request.headers.get("authorization", ""))
    if key is None:
        raise ApiError(401, "Incorrect or revoked API key. Create one in LLMHub under Settings → API keys.",
                       code="invalid_api_key")  # fmt: skip
    request.api_key = key  # for the request's log line
    return key


# ---- GET /v1/models


def _model_list(request: HttpRequest) -> dict:
    key = _authenticate(request)
    ids = set(providers_for(key.team).filter(enabled=True).values_list("id", flat=True))
    refs = [entry.ref for entry in registry.list_models(enabled_only=True) if entry.provider_id in ids]
    names = refs + ["default"] + list(ModelAlias.objects.filter(team=key.team).values_list("name", flat=True))
    if key.allowed_models:
        names = [name for name in names if name in key.allowed_models]
    owner = f"team:{key.team.name}"
    return {
        "object": "list",
        "data": [{"id": n, "object": "model", "created": 0, "owned_by": owner} for n in names],
    }


@csrf_exempt
async def models(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return ApiError(405, "Use GET for /v1/models.", code="method_not_allowed").response()
    try:
        return JsonResponse(await sync_to_async(_model_list)(request))
    except ApiError as error:
        return error.response()


# ---- POST /v1/chat/completions


@dataclass
class Prepared:
    run: Run
    request: fmt.ChatRequest


def _resolve(key: ApiKey, name: str) -> str:
    """A model name as a program sends it ("openai/gpt-4o", "fast", "default") as a "provider/model"
    ref the key may use."""
    if name == "default":
        entry = default_model_for(key.team)
        if entry is None:
            raise ApiError(400, "Your team has no default model yet: an admin picks one in LLMHub.",
                           code="model_not_found", param="model")  # fmt: skip
        ref = entry.ref
    elif "/" in name:
        ref = name
    else:
        alias = ModelAlias.objects.filter(team=key.team, name=name).first()
        if alias is None:
            raise ApiError(400, f"The model {name!r} does not exist: use a provider/model id from /v1/models "
                           "or one of your team's aliases.", code="model_not_found", param="model")  # fmt: skip
        ref = alias.target
    if key.allowed_models and name not in key.allowed_models and ref not in key.allowed_models:
        raise ApiError(403, f"This API key may not use {name}. It may use: {', '.join(key.allowed_models)}.",
                       code="model_not_allowed", param="model")  # fmt: skip
    return ref


def _prepare(request: HttpRequest, body: bytes) -> Prepared:
    """Everything before the provider is called, in one trip to the database thread."""
    key = _authenticate(request)
    try:
        chat = fmt.parse(body)
    except fmt.BadRequest as error:
        raise ApiError(400, str(error), code=error.code, param=error.param) from None
    ref = _resolve(key, chat.model)
    try:
        available = runs.available_model(key.team, ref)
    except runs.RunRefused as refused:
        raise ApiError(400, str(refused), code="model_not_found", param="model") from None
    entry = available[0]
    run = runs.create_run(
        None,
        key.team,
        ref,
        chat.messages,
        chat.max_tokens or entry.info.max_output,
        temperature=chat.temperature,
        api_key=key,
        available=available,
        request_id=request.request_id,
    )
    if run.estimated_input_tokens + 1 > entry.info.context_window:
        _refuse(
            run,
            f"This model's maximum context length is {entry.info.context_window:,} tokens; the messages "
            f"have about {run.estimated_input_tokens:,}. Shorten them or pick a model with a longer context.",
        )
        raise ApiError(400, run.error_message, code="context_length_exceeded", param="messages")
    if run.max_cost_usd is None and not key.allow_unpriced:
        _refuse(
            run,
            f"{ref} has no known price, so its cost cannot be controlled. An admin sets its price "
            "in LLMHub, or allows this API key to run unpriced models.",
        )
        raise ApiError(400, run.error_message, code="unpriced_model", param="model")
    return Prepared(run, chat)


def _refuse(run: Run, message: str) -> None:
    run.status, run.error_message = Run.Status.FAILED, message
    run.save(update_fields=["status", "error_message"])


def _failure(run: Run) -> ApiError:
    """The HTTP error for a run that ended without an answer."""
    if run.refusal is not None:
        return ApiError(402, str(run.refusal), type_="insufficient_quota", code="budget_exceeded")
    error = run.last_error
    if isinstance(error, RateLimited):
        return ApiError(429, run.error_message, type_="rate_limit_error", code="rate_limit_exceeded",
                        headers=fmt.retry_after_header(error.retry_after))  # fmt: skip
    if isinstance(error, NetworkError | Timeout):
        return ApiError(503, run.error_message, type_="api_error", code="upstream_unavailable")
    return ApiError(
        502, run.error_message or "The provider failed.", type_="api_error", code="upstream_error"
    )


@csrf_exempt
async def chat_completions(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return ApiError(405, "Use POST for /v1/chat/completions.", code="method_not_allowed").response()
    limit = settings.LLMHUB_API_MAX_BODY_BYTES
    if int(request.headers.get("content-length") or 0) > limit:
        return ApiError(
            400, f"The request body is over the limit of {limit:,} bytes.", code="request_too_large"
        ).response()
    try:
        prepared = await sync_to_async(_prepare)(request, request.body)
    except ApiError as error:
        return error.response()
    events = aiter(runs.stream(prepared.run))
    run = prepared.run
    if not prepared.request.stream:
        async for event in events:
            if isinstance(event, Run):
                run = event
        if run.status != Run.Status.COMPLETED:
            return _failure(run).response()
        return JsonResponse(fmt.completion(run, run.model_used or run.model_requested))
    # Streaming: the status line waits for the first text (or the failure that replaces it).
    async for event in events:
        if isinstance(event, Delta):
            return _sse(_relay(run, prepared.request, event, events))
        if isinstance(event, Run) and event.finished:
            if event.status == Run.Status.COMPLETED:  # finished with no text at all
                return _sse(_relay(run, prepared.request, None, events))
            return _failure(event).response()
    return _failure(run).response()


def _sse(stream: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a proxy in front must not buffer the stream either
    return response


async def _relay(run: Run, chat: fmt.ChatRequest, first: Delta | None, events) -> AsyncIterator[bytes]:
    """Each delta is written as it arrives; the usage row is committed before the last chunk."""
    writer = fmt.ChunkWriter(run, run.model_used or run.model_requested, chat.include_usage)
    yield writer.role()
    if first is not None:
        yield writer.delta(first.text)
    async for event in events:
        if isinstance(event, Delta):
            yield writer.delta(event.text)
        elif isinstance(event, Run):
            run = event
        else:
            yield writer.comment(getattr(event, "message", "waiting"))
    if run.status == Run.Status.COMPLETED:
        yield writer.finish(run)
    else:
        failure = _failure(run)
        yield fmt.error_event(str(failure), failure.type, failure.code)


@csrf_exempt
def not_found(request: HttpRequest, path: str) -> HttpResponse:
    return ApiError(404, f"Unknown API path /v1/{path}. This hub serves /v1/models and /v1/chat/completions.",
                    code="unknown_url").response()  # fmt: skip
