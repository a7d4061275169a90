"""Connecting providers, choosing models, and Settings → Providers."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget

from accounts.teams import (
    can_manage,
    current_team,
    default_model_for,
    model_choices,
    providers_for,
    require_admin,
)
from audit import log
from providers import breaker
from providers.catalog import sync_models
from providers.credentials import CredentialsMissing
from providers.errors import ProviderError
from providers.forms import DefaultModelForm, ProviderSetupForm
from providers.kinds import UnknownKind
from providers.models import CustomKind, Provider
from providers.network import AddressRefused
from providers.registry import registry
from providers.setup import ProviderTaken
from usage import spool

# Rendering runs the context processors, which read the database: from async views, in a thread.
arender = sync_to_async(render)


def _get_provider_for_admin(request: HttpRequest, provider_id: str) -> Provider:
    provider = get_object_or_404(Provider.objects.select_related("team"), pk=provider_id)
    if not can_manage(request.user, provider):
        raise PermissionDenied
    return provider


def _kind_or_404(kind_id: str, team=None):
    """A kind the team may set up (with a team), or any kind (editing an existing provider)."""
    if team is not None:
        kind = next((k for k in registry.kinds_for(team) if k.id == kind_id), None)
        if kind is None:
            raise Http404(f"No provider kind {kind_id!r}")
        return kind
    try:
        return registry.kind(kind_id)
    except UnknownKind:
        raise Http404(f"No provider kind {kind_id!r}") from None


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    team = current_team(request)
    is_admin = team is not None and request.user.is_team_admin(team)
    providers = list(providers_for(team)) if team else []
    if is_admin and not any(p.enabled for p in providers):
        return redirect("providers:connect")
    context = {
        "team": team,
        "is_admin": is_admin,
        "providers": providers,
        "default_model": default_model_for(team) if team else None,
    }
    return render(request, "providers/home.html", context)


@require_GET
@login_required
def connect(request: HttpRequest) -> HttpResponse:
    team = require_admin(request)
    first = not providers_for(team).exists()
    return render(request, "providers/connect.html", {"kinds": registry.kinds_for(team), "first": first})


@require_http_methods(["GET", "POST"])
@login_required
async def setup(request: HttpRequest, kind_id: str = "", provider_id: str = "") -> HttpResponse:
    """Connecting a provider (by kind) and editing one: one form, one flow. "Test connection"
    checks in place and is audited; saving checks a new key or endpoint first, unless the admin
    explicitly saves anyway after a failed check."""
    team, kind, provider = await sync_to_async(_setup_subject)(request, kind_id, provider_id)
    form = ProviderSetupForm(
        kind,
        registry.credential_fields(kind),
        request.POST or None,
        provider=provider,
        private_network=request.user.is_staff,
    )
    action_url = (
        reverse("providers:edit", args=[provider.id])
        if provider
        else reverse("providers:connect-kind", args=[kind.id])
    )
    context = {
        "form": form,
        "kind": kind,
        "provider": provider,
        "editing": provider is not None,
        "action": action_url,
        "key_required": any(f.required and f.secret for f in form.credential_fields),
    }
    if request.method == "GET":
        return await arender(request, "providers/connect_kind.html", context)
    if not await sync_to_async(form.is_valid)():
        return await _form_with_errors(request, context)
    action = request.POST.get("action", "save")
    error = None
    if action == "test" or (form.changes_connection() and action != "save_anyway"):
        error = await _test_connection(request, team, form)
    if action == "test" or error:
        result = {**context, "error": error, "tested": True, "saving": action == "save"}
        return await arender(request, "providers/connect_kind.html#result", result)
    validated = form.changes_connection() and action != "save_anyway"
    try:
        provider = await sync_to_async(_save)(request, team, form, validated)
    except (CredentialsMissing, AddressRefused, ProviderTaken) as refused:
        form.add_error(None, getattr(refused, "reason", str(refused)))
        return await _form_with_errors(request, context)
    url = (
        reverse("providers:settings")
        if context["editing"]
        else reverse("providers:models", args=[provider.id])
    )
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _setup_subject(request: HttpRequest, kind_id: str, provider_id: str):
    """The team, the kind and (editing) the provider of the set-up form, each checked for access."""
    team = require_admin(request)
    if provider_id:
        provider = _get_provider_for_admin(request, provider_id)
        return team, _kind_or_404(provider.kind), provider
    return team, _kind_or_404(kind_id, team), None


async def _form_with_errors(request: HttpRequest, context: dict) -> HttpResponse:
    """The form again with its errors (typed values kept, secrets excepted), in place of itself."""
    if not request.htmx:
        return await arender(request, "providers/connect_kind.html", context)
    response = await arender(request, "providers/connect_kind.html#setup-form", context)
    return reswap(retarget(response, "#setup-form"), "outerHTML")


async def _test_connection(request: HttpRequest, team, form: ProviderSetupForm) -> ProviderError | None:
    """Check what the form holds (or what is stored for this same endpoint); audited, never the key."""
    error = None
    try:
        await registry.validate_config(form.kind, form.merged, form.endpoint, form.private_network)
    except ProviderError as exc:
        error = exc
    outcome = error.user_message if error else "connected"
    await sync_to_async(log.record)(
        request.user,
        "connection_tested",
        form.provider or team,
        team=team,
        after={"kind": form.kind.id, "endpoint": form.endpoint, "outcome": outcome},
    )
    return error


def _save(request: HttpRequest, team, form: ProviderSetupForm, validated: bool) -> Provider:
    fields = {
        "display_name": form.cleaned_data["display_name"],
        "endpoint": form.endpoint,
        "private_network": form.private_network,
        "set_by": request.user,
    }
    provider = form.provider
    before = _state(provider) if provider else None
    with transaction.atomic():
        if provider is None:
            provider = registry.create(form.kind.id, form.credentials(), team=team, **fields)
        else:
            provider = registry.save(
                form.kind.id,
                form.credentials(),
                provider_id=provider.id,
                enabled=None,
                team=provider.team,
                **fields,
            )
        if validated:
            provider.last_validated_at = timezone.now()
            provider.save(update_fields=["last_validated_at"])
        if before is None:
            action = "credentials_added"
        else:
            action = (
                "credentials_updated"
                if any(form.cleaned_data.get(f.name) for f in form.credential_fields if f.secret)
                else "provider_updated"
            )
        log.record(
            request.user,
            action,
            provider,
            before=before or {},
            after=_state(provider) | {"validated": validated},
        )
    if before is not None:
        messages.success(request, f"{provider.display_name} saved.")
    elif not provider.models.exists():
        # A definition without models (a custom server): read them from the server's own list.
        try:
            report = sync_models(provider)
            messages.info(request, str(report))
        except ProviderError as error:
            messages.warning(request, f"No models listed yet: {error.user_message}")
    return provider


@require_http_methods(["GET", "POST"])
@login_required
def models(request: HttpRequest, provider_id: str) -> HttpResponse:
    """Model selection: prices per 1M tokens, context windows, the default highlighted."""
    team = require_admin(request)
    provider = _get_provider_for_admin(request, provider_id)
    entries = registry.list_models(provider.id, enabled_only=False)
    if request.method == "POST":
        ref = request.POST.get("model", "")
        if ref not in {e.ref for e in entries}:
            messages.error(request, "Pick one of the listed models.")
        else:
            _set_default_model(request, team, ref)
            messages.success(request, f"New automations will use {ref}.")
            return redirect("home")
    current = default_model_for(team)
    return render(
        request,
        "providers/models.html",
        {"provider": provider, "entries": entries, "current": current.ref if current else ""},
    )


def _set_default_model(request: HttpRequest, team, ref: str) -> None:
    before = team.default_model
    if before != ref:
        team.default_model = ref
        team.save(update_fields=["default_model"])
        log.record(
            request.user,
            "default_model_changed",
            team,
            team=team,
            before={"model": before},
            after={"model": ref},
        )


@require_GET
@login_required
def settings(request: HttpRequest) -> HttpResponse:
    team = require_admin(request)
    return render(request, "providers/settings.html", _settings_context(request, team))


def _settings_context(request: HttpRequest, team, form: DefaultModelForm | None = None) -> dict:
    providers = list(providers_for(team).select_related("team", "breaker"))
    custom = CustomKind.objects.filter(team=team) if not request.user.is_staff else CustomKind.objects.all()
    custom = {row.pk: row for row in custom.select_related("team")}
    for provider in providers:
        provider.manageable = can_manage(request.user, provider)
        # A custom kind is listed once: in its provider's row once connected, below until then.
        provider.custom_kind = custom.pop(provider.kind, None)
    current = default_model_for(team)
    form = form or DefaultModelForm(
        model_choices(team, with_features=True), initial={"model": current.ref if current else ""}
    )
    connected = set(Provider.objects.filter(kind__in=list(custom)).values_list("kind", flat=True))
    return {
        "team": team,
        "providers": providers,
        "default_form": form,
        "current": current,
        "custom_kinds": [row for pk, row in custom.items() if pk not in connected],
        "providers_file": bool(django_settings.LLMHUB_PROVIDERS_FILE),
        "spooled": spool.pending(None if request.user.is_staff else [team.pk]),
    }


@require_POST
@login_required
def default_model(request: HttpRequest) -> HttpResponse:
    team = require_admin(request)
    form = DefaultModelForm(model_choices(team, with_features=True), request.POST)
    if form.is_valid():
        _set_default_model(request, team, form.cleaned_data["model"])
        messages.success(request, f"New automations will use {form.cleaned_data['model']}.")
        return redirect("providers:settings")
    return render(request, "providers/settings.html", _settings_context(request, team, form))


@require_POST
@login_required
def reload_files(request: HttpRequest) -> HttpResponse:
    """Re-read the providers file; only instance staff, since the file serves every team."""
    if not request.user.is_staff:
        raise PermissionDenied
    error = registry.reload()
    if error:
        messages.error(request, f"{error} Nothing was changed.")
    else:
        messages.success(request, "Providers file reloaded.")
    return redirect("providers:settings")


@require_POST
@login_required
def sync(request: HttpRequest, provider_id: str) -> HttpResponse:
    """Read the provider's own model list now (the "Sync models" button): new models appear at once."""
    require_admin(request)
    provider = _get_provider_for_admin(request, provider_id)
    try:
        report = sync_models(provider)
    except ProviderError as error:
        result, ok = f"Sync failed: {error.user_message}", False
    else:
        result, ok = str(report), True
        log.record(
            request.user, "models_synced", provider, after={"added": report.added, "listed": report.listed}
        )
    if request.htmx:
        return render(
            request, "providers/settings.html#sync-result", {"provider": provider, "result": result, "ok": ok}
        )
    (messages.success if ok else messages.error)(request, result)
    return redirect("providers:settings")


@require_POST
@login_required
def toggle(request: HttpRequest, provider_id: str) -> HttpResponse:
    require_admin(request)
    provider = _get_provider_for_admin(request, provider_id)
    provider.enabled = not provider.enabled
    provider.save(update_fields=["enabled", "updated_at"])
    action = "provider_enabled" if provider.enabled else "provider_disabled"
    log.record(
        request.user,
        action,
        provider,
        before={"enabled": not provider.enabled},
        after={"enabled": provider.enabled},
    )
    if request.htmx:
        provider.manageable = True
        provider.custom_kind = CustomKind.objects.filter(pk=provider.kind).first()
        return render(request, "providers/settings.html#provider-row", {"provider": provider})
    return redirect("providers:settings")


@require_POST
@login_required
def breaker_reset(request: HttpRequest, provider_id: str) -> HttpResponse:
    """Close an open circuit by hand (the provider was fixed): runs use it again at once."""
    require_admin(request)
    provider = _get_provider_for_admin(request, provider_id)
    breaker.reset(provider, request.user)
    messages.success(request, f"{provider.display_name} is tried again from now on.")
    return redirect("providers:settings")


@require_http_methods(["GET", "POST"])
@login_required
def delete(request: HttpRequest, provider_id: str) -> HttpResponse:
    require_admin(request)
    provider = _get_provider_for_admin(request, provider_id)
    if request.method == "POST":
        with transaction.atomic():
            log.record(request.user, "credentials_removed", provider, before=_state(provider))
            provider.delete()  # the encrypted credentials go with the row
        messages.success(request, f"{provider.display_name} removed; its credentials are destroyed.")
        return redirect("providers:settings")
    return render(request, "providers/delete.html", {"provider": provider})


def _state(provider: Provider) -> dict:
    """What the audit log keeps of a provider: never a credential, at most its mask."""
    return {
        "name": provider.display_name,
        "kind": provider.kind,
        "endpoint": provider.endpoint,
        "enabled": provider.enabled,
        "masked_key": provider.masked_key(),
    }
