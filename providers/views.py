from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from providers.registry import registry


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    providers = registry.list()
    catalog = registry.list_models(enabled_only=False)
    for provider in providers:
        provider.catalog = [entry for entry in catalog if entry.provider_id == provider.id]
    return render(request, "providers/home.html", {"providers": providers})
