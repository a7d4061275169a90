"""Azure OpenAI: OpenAI's wire format behind deployment URLs, an `api-key` header and an api-version."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from providers.adapters.openai import OpenAIAdapter
from providers.base import (
    CredentialField,
    GenerationRequest,
    ModelInfo,
    ProviderConfig,
    StreamEvent,
)
from providers.definitions import ModelDefinition
from providers.embedding import EmbeddingRequest

DEFAULT_API_VERSION = "2024-10-21"


class AzureOpenAIAdapter(OpenAIAdapter):
    """A deployment is a name the customer chose for a model ("gpt4o-prod" = gpt-4o): requests go to
    the deployment, prices and limits are the underlying model's. Deployments are set up as
    "name=model" pairs, since Azure's data-plane API does not list them."""

    dialect = "azure"
    kind_name = "Azure OpenAI"
    default_endpoint = "https://YOUR-RESOURCE.openai.azure.com"
    credential_fields = (
        CredentialField("api_key", "API key", placeholder="Key 1 or Key 2 of the resource"),
        CredentialField(
            "deployments",
            "Deployments",
            secret=False,
            help_text="Each deployment and the model it runs: gpt4o-prod=gpt-4o, mini=gpt-4o-mini",
            placeholder="gpt4o-prod=gpt-4o",
        ),
        CredentialField(
            "api_version",
            "API version",
            secret=False,
            required=False,
            help_text=f"Leave empty for {DEFAULT_API_VERSION}.",
            placeholder=DEFAULT_API_VERSION,
        ),
    )

    def auth_headers(self, config: ProviderConfig) -> dict[str, str]:
        return {"api-key": config.credential("api_key")}

    def _version(self, config: ProviderConfig | None = None) -> str:
        return (config or self.config).credential("api_version") or DEFAULT_API_VERSION

    def validation_path_for(self, config: ProviderConfig) -> str:
        return f"/openai/models?api-version={self._version(config)}"

    async def fetch_model_ids(self) -> list[str]:
        """The deployments set up for this provider (Azure's own list is of models, not deployments)."""
        return sorted(deployments(self.config.credential("deployments")))

    def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        return self._stream_from(self._path(request.model), request)

    def embeddings_path(self, model: str) -> str:
        return f"/openai/deployments/{model}/embeddings?api-version={self._version()}"

    def embedding_body(self, request: EmbeddingRequest) -> dict[str, Any]:
        body = super().embedding_body(request)
        del body["model"]  # the deployment in the URL names it
        return body

    def _path(self, deployment: str) -> str:
        return f"/openai/deployments/{deployment}/chat/completions?api-version={self._version()}"

    def payload(self, request: GenerationRequest) -> dict[str, Any]:
        body = super().payload(request)
        del body["model"]  # the deployment in the URL names it
        return body

    @classmethod
    def catalogue(cls, credentials: Mapping[str, str]) -> list[ModelDefinition]:
        """One entry per deployment, priced as its model (the registry copies that model's limits)."""
        return [
            ModelDefinition(
                info=ModelInfo(
                    id=name, display_name=f"{name} ({model})", context_window=128000, max_output=4096
                ),
                price_given=False,
                prices_as=model,
            )
            for name, model in deployments(credentials.get("deployments", "")).items()
        ]


def deployments(text: str) -> dict[str, str]:
    """ "gpt4o-prod=gpt-4o, mini=gpt-4o-mini" -> {"gpt4o-prod": "gpt-4o", "mini": "gpt-4o-mini"}."""
    pairs = {}
    for item in text.replace("\n", ",").split(","):
        name, sep, model = item.strip().partition("=")
        if name.strip() and sep and model.strip():
            pairs[name.strip()] = model.strip()
        elif item.strip():
            raise ValueError(f"Write each deployment as name=model, not {item.strip()!r}.")
    return pairs
