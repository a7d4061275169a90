"""GET /v1/models and GET /v1/models/{id}: the models a key may name, its team's aliases included."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from gateway.front import ApiError, authenticate
from gateway.models import ApiKey, ModelAlias
from gateway.openai_response import json_response
from providers import configuration
from providers.team_catalog import for_team


def _model_names(key: ApiKey) -> list[str]:
    refs = for_team(key.team).refs()  # one query, whatever other teams connect
    names = refs + ["default"] + list(ModelAlias.objects.filter(team=key.team).values_list("name", flat=True))
    if key.allowed_models:
        names = [name for name in names if name in key.allowed_models]
    return names


def _model_list(request: HttpRequest) -> dict:
    key = authenticate(request)
    owner = f"team:{key.team.name}"
    return {"object": "list", "data": [_model(name, owner) for name in _model_names(key)]}


def _model(name: str, owner: str) -> dict:
    return {"id": name, "object": "model", "created": 0, "owned_by": owner}


def _one_model(request: HttpRequest, model_id: str) -> dict:
    key = authenticate(request)
    if model_id not in _model_names(key):
        raise ApiError(
            404,
            f"The model '{model_id}' does not exist or you do not have access to it.",
            code="model_not_found",
            param="model",
        )
    return _model(model_id, f"team:{key.team.name}")


@csrf_exempt
@configuration.pinned
async def models(request: HttpRequest, model_id: str = "") -> HttpResponse:
    """GET /v1/models, and GET /v1/models/{id} (ids hold a slash: "openai/gpt-4o")."""
    if request.method != "GET":
        return ApiError(405, "Use GET for /v1/models.", code="method_not_allowed").response()
    try:
        if model_id:
            return json_response(await sync_to_async(_one_model)(request, model_id))
        return json_response(await sync_to_async(_model_list)(request))
    except ApiError as error:
        return error.response()
