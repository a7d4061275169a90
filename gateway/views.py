"""Settings → API keys: team admins create, scope and revoke keys, and name model aliases."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts.teams import model_choices, require_admin
from audit import log
from gateway import keys
from gateway.forms import AliasForm, ApiKeyForm
from gateway.models import ApiKey, ModelAlias
from usage.models import Budget

NEW_SECRET = "gateway_new_api_key"


def _refs(team) -> list[str]:
    return [ref for _, group in model_choices(team, embeddings=True) for ref, _ in group]


@require_http_methods(["GET", "POST"])
@login_required
@never_cache  # it shows a new key once: no browser or proxy may keep a copy
def keys_page(request: HttpRequest) -> HttpResponse:
    team = require_admin(request)
    aliases = list(ModelAlias.objects.filter(team=team))
    # Grouped by provider for the searchable picker; names programs may send as `model`.
    aliased = [("default", "default (the team's default model)")] + [
        (a.name, f"{a.name} → {a.target}") for a in aliases
    ]
    form = ApiKeyForm([*model_choices(team, embeddings=True), ("Aliases", aliased)], request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        with transaction.atomic():
            created = keys.create(team, data["name"], created_by=request.user, allowed_models=data["allowed_models"],
                                  allow_unpriced=data["allow_unpriced"])  # fmt: skip
            if data["daily_limit_usd"] is not None or data["monthly_limit_usd"] is not None:
                Budget.objects.create(team=team, api_key=created.key, daily_limit_usd=data["daily_limit_usd"],
                                      monthly_limit_usd=data["monthly_limit_usd"])  # fmt: skip
        # Redirect, so a reload cannot create a second key; the secret is shown on the next page
        # view only, then forgotten.
        request.session[NEW_SECRET] = created.secret
        return redirect("gateway:keys")
    context = {
        "team": team, "form": form, "new_secret": request.session.pop(NEW_SECRET, None), "aliases": aliases,
        "alias_form": AliasForm(_refs(team)),
        "keys": ApiKey.objects.filter(team=team).select_related("created_by", "budget"),
        "base_url": request.build_absolute_uri("/v1"),
    }  # fmt: skip
    return render(request, "gateway/keys.html", context)


@require_POST
@login_required
def revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    team = require_admin(request)
    key = get_object_or_404(ApiKey, pk=key_id, team=team)
    keys.revoke(key, request.user)
    messages.success(request, f"API key {key.name} ({key.masked}) is revoked: programs using it are refused.")
    return redirect("gateway:keys")


@require_POST
@login_required
def add_alias(request: HttpRequest) -> HttpResponse:
    team = require_admin(request)
    form = AliasForm(_refs(team), request.POST)
    if not form.is_valid():
        errors = "; ".join(e for field in form.errors.values() for e in field)
        messages.error(request, f"Alias not saved: {errors}")
        return redirect("gateway:keys")
    try:
        with transaction.atomic():
            alias = ModelAlias.objects.create(team=team, **form.cleaned_data)
            log.record(request.user, "model_alias_added", alias, team=team, after=form.cleaned_data)
    except IntegrityError:
        messages.error(request, f"The alias {form.cleaned_data['name']} exists already; delete it first.")
    else:
        messages.success(request, f"{alias.name} now means {alias.target}.")
    return redirect("gateway:keys")


@require_POST
@login_required
def delete_alias(request: HttpRequest, alias_id: int) -> HttpResponse:
    team = require_admin(request)
    alias = get_object_or_404(ModelAlias, pk=alias_id, team=team)
    with transaction.atomic():
        log.record(request.user, "model_alias_removed", alias, team=team,
                   before={"name": alias.name, "target": alias.target})  # fmt: skip
        alias.delete()
    return redirect("gateway:keys")
