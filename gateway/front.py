"""The API's front: everything a /v1/ POST goes through before its run starts or its answer is built.

The key is authenticated, the body read in the endpoint's format, the model name resolved to a model
the key may use, the run priced and checked (context window, price) and admitted under the key's rate
limits; all of it in one trip to the database thread, whose faults become a 503. A client that hangs
up meanwhile leaves nothing held: the run the trip began is ended. Every refusal is an ApiError in
OpenAI's error shape. The endpoints (gateway.api and the *_api modules) only translate.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse

from accounts.clients import client_address
from accounts.teams import default_model_for, providers_for
from gateway import keys, ratelimits
from gateway import openai_format as fmt
from gateway import openai_response as answer
from gateway.models import ApiKey, ModelAlias
from llmhub import conf, hops
from ops import observe
from providers.models import ProviderModel
from providers.registry import registry
from usage import budgets, live, runs
from usage.events import DatabaseUnavailable
from usage.models import Run

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """A refused /v1/ request, answered in OpenAI's error shape (the Anthropic endpoints reshape it)."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.type, self.code = status, type_, code
        self.param, self.headers = param, headers or {}

    def response(self) -> HttpResponse:
        body = answer.error_body(str(self), self.type, self.code, self.param)
        return answer.json_response(body, status=self.status, headers=self.headers)


def authenticate(request: HttpRequest) -> ApiKey:
    """The request's API key, or the ApiError that refuses it. Wrong keys are counted by address, and
    an address that sent too many waits before it may try again (keys.failure_wait)."""
    address = client_address(request)
    if wait := keys.failure_wait(address):
        message = f"Too many wrong API keys from your address. Try again in {math.ceil(wait)} seconds."
        raise ApiError(
            429,
            message,
            type_="rate_limit_error",
            code="too_many_failed_attempts",
            headers=answer.retry_after_header(wait),
        )
    key = keys.authenticate(keys.presented(MetaHeaders(request.META)))
    if key is None:
        keys.note_failure(address)
        raise ApiError(
            401,
            "Incorrect or revoked API key. Create one in LLMHub under Settings → API keys.",
            code="invalid_api_key",
        )
    request.api_key = key  # for the request's log line
    return key


class MetaHeaders:
    """The request's headers by name (`authorization`), read in request.META. Django's
    request.headers, built on first use, converts the name of every header the request has (~20
    calls) to read these two or three (~30,000 instructions a request, bench/server_instructions.py)."""

    UNPREFIXED = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})  # as Django's HttpHeaders has them

    def __init__(self, meta: dict[str, Any]) -> None:
        self.meta = meta

    def get(self, name: str, default: str | None = None) -> str | None:
        key = name.upper().replace("-", "_")
        return self.meta.get(key if key in self.UNPREFIXED else f"HTTP_{key}", default)


def database_unavailable() -> ApiError:
    """The 503 of a request the database could not take: a program retries it after a moment."""
    message = str(DatabaseUnavailable())
    wait = answer.retry_after_header(5)
    return ApiError(503, message, type_="api_error", code="database_unavailable", headers=wait)


Parse = Callable[[bytes], fmt.ChatRequest]  # a request body in one API's format, read into ours


@dataclass
class Prepared:
    run: Run
    request: fmt.ChatRequest
    planned: runs.Planned | None = None  # for runs.stream(run, planned=...)


def resolve(key: ApiKey, name: str) -> str:
    """A model name as a program sends it ("openai/gpt-4o", "fast", "default") as a "provider/model"
    ref the key may use."""
    if name == "default":
        entry = default_model_for(key.team)
        if entry is None:
            raise ApiError(
                400,
                "Your team has no default model yet: an admin picks one in LLMHub.",
                code="model_not_found",
                param="model",
            )
        ref = entry.ref
    elif "/" in name:
        ref = name
    else:
        alias = ModelAlias.objects.filter(team=key.team, name=name).first()
        ref = alias.target if alias else _bare(key, name)
    if key.allowed_models and name not in key.allowed_models and ref not in key.allowed_models:
        raise ApiError(
            403,
            f"This API key may not use {name}. It may use: {', '.join(key.allowed_models)}.",
            code="model_not_allowed",
            param="model",
        )
    return ref


def _bare(key: ApiKey, name: str) -> str:
    """A model named without its provider ("gpt-4o-mini", as litellm and the tools built on it send
    it): the one enabled provider of the team that offers it, or a 400 listing the choices."""
    providers = providers_for(key.team).filter(enabled=True)
    refs = sorted(
        ProviderModel.objects.filter(provider__in=providers, model_id=name).values_list("id", flat=True)
    )
    if len(refs) == 1:
        return refs[0]
    if refs:
        raise ApiError(
            400,
            f"Several of your providers offer {name}: name one of {', '.join(refs)}.",
            code="model_ambiguous",
            param="model",
        )
    raise ApiError(
        400,
        f"The model {name!r} does not exist: use a provider/model id from /v1/models "
        "or one of your team's aliases.",
        code="model_not_found",
        param="model",
    )


async def begin(request: HttpRequest, parse: Parse) -> Prepared:
    """A POST read with `parse` and made a pending run of the engine (key, model, allowed models,
    estimate, context window, price) and planned (its first attempt's reservation held), or the
    ApiError that refuses it. Hand its plan to runs.stream, with no await in between.

    A draining server plans nothing: runs.stream ends the run as interrupted (a 503). A client that
    hangs up meanwhile cancels this task, but not the trip to the database: it is waited for, and
    the run it began is ended (runs.abandon), its hold released at once."""
    planning = not live.draining()
    return await admit(request, functools.partial(_prepare, request, request.body, parse, planning), _abandon)


async def _abandon(trip: asyncio.Future) -> None:
    """The run a trip began, once it is back, ended: its client has gone."""
    await asyncio.wait([trip])
    if not trip.cancelled() and trip.exception() is None:
        await runs.abandon(trip.result().run)


async def admit(
    request: HttpRequest,
    prepare: Callable[[], Any],
    abandon: Callable[[asyncio.Future], Awaitable[None]] | None = None,
) -> Any:
    """Every POST's front: method and size checked, `prepare` run off the loop, database faults a 503.
    With `abandon`, a cancelled caller (its client hung up) hands it the trip's future, for what
    `prepare` did meanwhile to be undone."""
    if request.method != "POST":
        raise ApiError(405, f"Use POST for {request.path}.", code="method_not_allowed")
    limit = conf.setting("LLMHUB_API_MAX_BODY_BYTES")
    if int(request.META.get("CONTENT_LENGTH") or 0) > limit:
        raise ApiError(
            400, f"The request body is over the limit of {limit:,} bytes.", code="request_too_large"
        )
    try:
        # On the server's pooled threads, whose database connections last (closed when due by
        # hops), not the request's own thread, which would connect every time.
        trip = hops.start(prepare)
        return await (trip if abandon is None else asyncio.shield(trip))
    except asyncio.CancelledError:
        if abandon is not None:
            await abandon(trip)
        raise
    except ratelimits.RateLimited as limited:
        request.rate_limits = limited.standing
        observe.rate_limited(limited.used.limit.scope.partition(":")[0], limited.kind)
        headers = answer.retry_after_header(limited.retry_after)
        raise ApiError(
            429, str(limited), type_=limited.kind, code="rate_limit_exceeded", headers=headers
        ) from None
    except ratelimits.RateLimitsUnavailable:
        logger.exception("The rate limits could not be checked (Redis)")
        message = (
            "The hub cannot check this key's rate limits just now (Redis does not answer); retry in a moment."
        )
        wait = answer.retry_after_header(5)
        raise ApiError(
            503, message, type_="api_error", code="rate_limits_unavailable", headers=wait
        ) from None
    except budgets.BudgetUnavailable:
        raise database_unavailable() from None
    except DatabaseError:
        logger.exception("The request's run could not be written")
        raise database_unavailable() from None


@budgets.database_writable()  # a database that cannot be written: 503, never an HTML 500
def _prepare(request: HttpRequest, body: bytes, parse: Parse, planning: bool = False) -> Prepared:
    """Everything before the provider is called, in one trip to the database thread: with `planning`,
    the engine's plan too (runs.plan: fallback models, the first one's reservation), once the run
    is admitted; a refused request holds nothing."""
    key = authenticate(request)
    try:
        chat = parse(body)
    except fmt.BadRequest as error:
        raise ApiError(400, str(error), code=error.code, param=error.param) from None
    ref = resolve(key, chat.model)
    try:
        available = runs.available_model(key.team, ref)
    except runs.RunRefused as refused:
        raise ApiError(400, str(refused), code="model_not_found", param="model") from None
    entry, dialect = available
    # One 400 names everything the model cannot honour, the hub's own refusals included.
    # The model is entry.info: refusals read no request.model (here the name as the client sent it).
    # A copy of the request with the model's id in it cost ~69,000 instructions (dataclasses.replace).
    refused = chat.refused + registry.adapter_class(dialect).refusals(chat.request, entry.info)
    if refused:
        field = refused[0].split(" ")[0]
        param = field if field in fmt.USED or field in fmt.REFUSED else "messages"
        message = runs.UnsupportedFields(ref, refused).args[0]
        raise ApiError(400, message, code="unsupported_parameter", param=param)
    wanted = chat.request
    run = runs.price_run(
        None,
        key.team,
        ref,
        wanted.messages,
        wanted.max_tokens or entry.info.max_output,
        temperature=chat.temperature,
        api_key=key,
        available=available,
        options=wanted.options_json(),
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
    # A run that is planned here is saved with its first reservation, in that transaction (one
    # commit fewer a request); a plan that holds nothing saves it as it ends (runs.stream).
    request.rate_limits = ratelimits.admit_run(run, key, save=not planning)
    return Prepared(run, chat, runs.plan(run) if planning else None)


def _refuse(run: Run, message: str) -> None:
    run.status, run.error_message = Run.Status.FAILED, message
    run.save()  # a priced run is saved only once admitted: this one, refused, is kept to say why
