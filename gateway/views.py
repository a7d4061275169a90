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
from gateway import keys, ratelimits
from gateway.forms import AliasForm, ApiKeyForm, RateLimitsForm
from gateway.models import ApiKey, ModelAlias
from usage.models import Budget

NEW_SECRET = "gateway_new_api_key"


def _refs(team) -> list[str]:
    return [ref for _, group in model_choices(team, embeddings=True) for ref, _ in group]


def _key_form(team, aliases: list[ModelAlias], data=None) -> ApiKeyForm:
    """A new key's form: the team's models (embedding ones too) grouped by provider for the searchable
    picker, then the names programs may send as `model`."""
    aliased = [("default", "default (the team's default model)")]
    aliased += [(a.name, f"{a.name} → {a.target}") for a in aliases]
    return ApiKeyForm([*model_choices(team, embeddings=True), ("Aliases", aliased)], data)


@require_http_methods(["GET", "POST"])
@login_required
@never_cache  # it shows a new key once: no browser or proxy may keep a copy
def keys_page(request: HttpRequest) -> HttpResponse:
    team = require_admin(request)
    aliases = list(ModelAlias.objects.filter(team=team))
    form = _key_form(team, aliases, request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        with transaction.atomic():
            created = keys.create(
                team,
                data["name"],
                created_by=request.user,
                allowed_models=data["allowed_models"],
                allow_unpriced=data["allow_unpriced"],
                requests_per_minute=data["requests_per_minute"] or None,
                tokens_per_minute=data["tokens_per_minute"] or None,
            )
            if data["daily_limit_usd"] is not None or data["monthly_limit_usd"] is not None:
                Budget.objects.create(
                    team=team,
                    api_key=created.key,
                    daily_limit_usd=data["daily_limit_usd"],
                    monthly_limit_usd=data["monthly_limit_usd"],
                )
        # Redirect, so a reload cannot create a second key; the secret is shown on the next page
        # view only, then forgotten.
        request.session[NEW_SECRET] = created.secret
        return redirect("gateway:keys")
    return _page(request, team, form, aliases)


def _page(request: HttpRequest, team, form: ApiKeyForm, aliases: list, limits: RateLimitsForm | None = None):
    """The keys page; `limits` is one key's rate limits form as posted, shown with its errors."""
    rows = []
    for key in ApiKey.objects.filter(team=team).select_related("created_by", "budget"):
        if limits is not None and limits.prefix == _prefix(key):
            rows.append((key, limits))
        else:
            rows.append((key, RateLimitsForm(prefix=_prefix(key), initial=_limits(key))))
    context = {
        "team": team,
        "form": form,
        "new_secret": request.session.pop(NEW_SECRET, None),
        "aliases": aliases,
        "alias_form": AliasForm(_refs(team)),
        "rows": rows,
        "base_url": request.build_absolute_uri("/v1"),
    }
    return render(request, "gateway/keys.html", context)


def _prefix(key: ApiKey) -> str:
    return f"key-{key.pk}"


def _limits(key: ApiKey) -> dict:
    return {"requests_per_minute": key.requests_per_minute, "tokens_per_minute": key.tokens_per_minute}


@require_POST
@login_required
def key_limits(request: HttpRequest, key_id: int) -> HttpResponse:
    """One key's requests and tokens per minute; an invalid value shows the page with its error."""
    team = require_admin(request)
    key = get_object_or_404(ApiKey.objects.select_related("team"), pk=key_id, team=team, revoked_at=None)
    limits = RateLimitsForm(request.POST, prefix=_prefix(key))
    if not limits.is_valid():
        aliases = list(ModelAlias.objects.filter(team=team))
        form = _key_form(team, aliases)
        return _page(request, team, form, aliases, limits)
    data = limits.cleaned_data
    if ratelimits.change(key, data["requests_per_minute"], data["tokens_per_minute"], request.user):
        messages.success(request, f"Rate limits of {key.name} ({key.masked}) saved.")
    return redirect("gateway:keys")


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
        log.record(
            request.user,
            "model_alias_removed",
            alias,
            team=team,
            before={"name": alias.name, "target": alias.target},
        )
        alias.delete()
    return redirect("gateway:keys")
