"""GET and DELETE /v1/responses/{id} and GET /v1/responses/{id}/input_items: the responses a team
stored with `store: true` (gateway.response_store), answered in OpenAI's shapes. Another team's id
is answered exactly as an id that never existed."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from gateway import front, response_store
from gateway.front import ApiError
from gateway.models import StoredResponse
from gateway.openai_response import json_response

ITEM_PREFIXES = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}
LIST_PARAMETERS = {"limit", "after", "order"}


def _not_found(response_id: str) -> ApiError:
    return ApiError(404, f"Response with id '{response_id}' not found.", param="response_id")


def _refuse_parameters(request: HttpRequest, allowed: set[str]) -> None:
    for name, value in request.GET.items():
        if name == "include" and not value:
            continue
        if name not in allowed:
            served = ", ".join(sorted(allowed)) or "none"
            raise ApiError(
                400,
                f"This hub does not support the query parameter {name!r} here (served: {served}).",
                code="unsupported_parameter",
                param=name,
            )


def _stored(request: HttpRequest, response_id: str) -> StoredResponse:
    key = front.authenticate(request)
    try:
        return response_store.get(key.team, response_id)
    except response_store.NotFound:
        raise _not_found(response_id) from None


@csrf_exempt
def stored_response(request: HttpRequest, response_id: str) -> HttpResponse:
    """GET returns the Response object as it was answered; DELETE deletes it."""
    try:
        if request.method == "GET":
            _refuse_parameters(request, set())
            return json_response(_stored(request, response_id).response)
        if request.method == "DELETE":
            key = front.authenticate(request)
            try:
                response_store.delete(key.team, response_id)
            except response_store.NotFound:
                raise _not_found(response_id) from None
            return json_response({"id": response_id, "object": "response", "deleted": True})
        raise ApiError(405, f"Use GET or DELETE for {request.path}.", code="method_not_allowed")
    except ApiError as error:
        return error.response()


@csrf_exempt
def input_items(request: HttpRequest, response_id: str) -> HttpResponse:
    """This response's own input items (not the conversation it continued), newest first unless
    order=asc, paged with limit (1-100, default 20) and after."""
    try:
        if request.method != "GET":
            raise ApiError(405, f"Use GET for {request.path}.", code="method_not_allowed")
        _refuse_parameters(request, LIST_PARAMETERS)
        order, limit = _list_options(request)
        stored = _stored(request, response_id)
        items = [_with_id(stored.pk, n, item) for n, item in enumerate(stored.input_items)]
        if order == "desc":
            items.reverse()
        after = request.GET.get("after")
        if after:
            ids = [item["id"] for item in items]
            if after not in ids:
                raise ApiError(400, f"No input item with id '{after}' in this response.", param="after")
            items = items[ids.index(after) + 1 :]
        page = items[:limit]
        return json_response(
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(items) > limit,
            }
        )
    except ApiError as error:
        return error.response()


def _list_options(request: HttpRequest) -> tuple[str, int]:
    order = request.GET.get("order", "desc")
    if order not in ("asc", "desc"):
        raise ApiError(400, "order must be asc or desc.", param="order")
    try:
        limit = int(request.GET.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise ApiError(400, "limit must be a whole number from 1 to 100.", param="limit")
    return order, limit


def _with_id(response_id: str, index: int, item: dict[str, Any]) -> dict[str, Any]:
    """An input item as OpenAI lists it: with an id, and a message's content as a list of parts."""
    kind = item.get("type", "message")
    listed = {"type": kind, **item}
    listed.setdefault("id", f"{ITEM_PREFIXES.get(kind, 'item')}_{response_id.removeprefix('resp_')}_{index}")
    if kind == "message":
        listed.setdefault("status", "completed")
        if isinstance(item.get("content"), str):
            part = "output_text" if item.get("role") == "assistant" else "input_text"
            listed["content"] = [{"type": part, "text": item["content"]}]
    elif kind in ("function_call", "function_call_output"):
        listed.setdefault("status", "completed")
    return listed
