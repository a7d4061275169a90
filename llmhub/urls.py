from django.contrib import admin
from django.urls import include, path

from gateway import (
    api,
    completions_api,
    embeddings_api,
    messages_api,
    models_api,
    responses_api,
    stored_responses_api,
)
from providers import views as provider_views

urlpatterns = [
    path("", provider_views.home, name="home"),
    path("", include("accounts.urls")),
    path("providers/", include("providers.urls")),
    path("audit/", include("audit.urls")),
    path("", include("usage.urls")),
    path("automations/", include("automations.urls")),
    path("admin/", admin.site.urls),
    path("", include("ops.urls")),
    path("settings/", include("gateway.urls")),
    path("v1/models", models_api.models, name="api-models"),
    path("v1/models/<path:model_id>", models_api.models, name="api-model"),
    path("v1/chat/completions", api.chat_completions, name="api-chat"),
    path("v1/completions", completions_api.completions, name="api-completions"),
    path("v1/embeddings", embeddings_api.create, name="api-embeddings"),
    path("v1/messages", messages_api.messages, name="api-messages"),
    path("v1/messages/count_tokens", messages_api.count_tokens, name="api-count-tokens"),
    path("v1/responses", responses_api.responses, name="api-responses"),
    path("v1/responses/<str:response_id>", stored_responses_api.stored_response, name="api-response"),
    path(
        "v1/responses/<str:response_id>/input_items", stored_responses_api.input_items, name="api-input-items"
    ),
    path("v1/<path:path>", api.not_found),
]
