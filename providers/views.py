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
from django_htmx.http import HttpResponseClientRedirect

from accounts.teams import (
    can_manage,
    current_team,
    default_model_for,
    model_choices,
    providers_for,
    require_admin,
)
from audit import log
from providers.catalog import sync_models
from providers.errors import ProviderError
from providers.forms import CustomProviderForm, DefaultModelForm, ProviderSetupForm
from providers.models import CustomKind, Provider
from providers.registry import UnknownKind, registry

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
    context = {"team": team, "is_admin": is_admin, "providers": providers,
               "default_model": default_model_for(team) if team else None}  # fmt: skip
    return render(request, "providers/home.html", context)


@require_GET
@login_required
def connect(request: HttpRequest) -> HttpResponse:
    team = require_admin(request)
    first = not providers_for(team).exists()
    return render(request, "providers/connect.html", {"kinds": registry.kinds_for(team), "first": first})


@require_http_methods(["GET", "POST"])
@login_required
async def connect_kind(request: HttpRequest, kind_id: str) -> HttpResponse:
    """The set-up form. "Test connection" checks in place; saving checks first, unless the admin
    explicitly saves anyway after a failed check."""
    team = await sync_to_async(require_admin)(request)
    kind = await sync_to_async(_kind_or_404)(kind_id, team)
    fields = registry.credential_fields(kind)
    form = ProviderSetupForm(kind, fields, request.POST or None)
    context = {"form": form, "kind": kind, "action": reverse("providers:connect-kind", args=[kind.id])}
    if request.method == "GET" or not form.is_valid():
        return await arender(request, "providers/connect_kind.html", context)
    action = request.POST.get("action", "save")
    credentials, endpoint = form.credentials(), form.cleaned_data["endpoint"]
    error = None
    if action != "save_anyway":
        try:
            await registry.validate_config(kind, credentials, endpoint)
        except ProviderError as exc:
            error = exc
    if action == "test" or error:
        return await arender(request, "providers/connect_kind.html#result", {**context, "error": error, "tested": True,
                                                                       "saving": action == "save"})  # fmt: skip
    provider = await sync_to_async(_save_new)(request, team, kind, form, validated=action != "save_anyway")
    url = reverse("providers:models", args=[provider.id])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _save_new(request: HttpRequest, team, kind, form: ProviderSetupForm, validated: bool) -> Provider:
    provider = registry.save(
        kind.id,
        form.credentials(),
        provider_id=registry.free_id(kind.id),
        display_name=form.cleaned_data["display_name"],
        endpoint=form.cleaned_data["endpoint"],
        team=team,
    )
    if validated:
        provider.last_validated_at = timezone.now()
        provider.save(update_fields=["last_validated_at"])
    log.record(request.user, "credentials_added", provider, after=_state(provider) | {"validated": validated})
    if not provider.models.exists():
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
    return render(request, "providers/models.html", {"provider": provider, "entries": entries,
                                                      "current": current.ref if current else ""})  # fmt: skip


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
    providers = list(providers_for(team).select_related("team"))
    custom = CustomKind.objects.filter(team=team) if not request.user.is_staff else CustomKind.objects.all()
    custom = {row.pk: row for row in custom.select_related("team")}
    for provider in providers:
        provider.manageable = can_manage(request.user, provider)
        # A custom kind is listed once: in its provider's row once connected, below until then.
        provider.custom_kind = custom.pop(provider.kind, None)
    current = default_model_for(team)
    form = form or DefaultModelForm(model_choices(team), initial={"model": current.ref if current else ""})
    connected = set(Provider.objects.filter(kind__in=list(custom)).values_list("kind", flat=True))
    return {
        "team": team,
        "providers": providers,
        "default_form": form,
        "current": current,
        "custom_kinds": [row for pk, row in custom.items() if pk not in connected],
        "providers_file": bool(django_settings.LLMHUB_PROVIDERS_FILE),
    }


@require_POST
@login_required
def default_model(request: HttpRequest) -> HttpResponse:
    team = require_admin(request)
    form = DefaultModelForm(model_choices(team), request.POST)
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


@require_http_methods(["GET", "POST"])
@login_required
async def edit(request: HttpRequest, provider_id: str) -> HttpResponse:
    """Replace a key (never shown again), rename, or move the endpoint; a new key or endpoint is
    checked before it is saved."""
    await sync_to_async(require_admin)(request)
    provider = await sync_to_async(_get_provider_for_admin)(request, provider_id)
    kind = await sync_to_async(_kind_or_404)(provider.kind)
    fields = registry.credential_fields(kind)
    stored = await sync_to_async(provider.credentials)()
    masked = {f.name: provider.masked_key() for f in fields if f.secret}
    initial = {"display_name": provider.display_name, "endpoint": provider.endpoint,
               **{f.name: stored.get(f.name, "") for f in fields if not f.secret}}  # fmt: skip
    form = ProviderSetupForm(kind, fields, request.POST or None, initial=initial, editing=True, masked=masked)
    context = {"form": form, "kind": kind, "provider": provider, "editing": True,
               "action": reverse("providers:edit", args=[provider.id])}  # fmt: skip
    if request.method == "GET" or not form.is_valid():
        return await arender(request, "providers/connect_kind.html", context)
    new_credentials = form.credentials()
    endpoint = form.cleaned_data["endpoint"] or kind.endpoint
    changed = any(new_credentials[f.name] for f in fields if f.secret) or endpoint != provider.endpoint
    action = request.POST.get("action", "save")
    error = None
    if (changed or action == "test") and action != "save_anyway":
        merged = {**stored, **{k: v for k, v in new_credentials.items() if v}}
        try:
            await registry.validate_config(kind, merged, endpoint)
        except ProviderError as exc:
            error = exc
    if action == "test" or error:
        return await arender(request, "providers/connect_kind.html#result", {**context, "error": error, "tested": True,
                                                                       "saving": action == "save"})  # fmt: skip
    await sync_to_async(_save_edit)(request, provider, form, validated=changed and action != "save_anyway")
    url = reverse("providers:settings")
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _save_edit(request: HttpRequest, provider: Provider, form: ProviderSetupForm, validated: bool) -> None:
    before = _state(provider)
    credentials = form.credentials()
    # Non-secret fields (an organization id) can be cleared; an empty secret means "unchanged".
    secret = {f.name for f in form.credential_fields if f.secret}
    updated = {**provider.credentials(), **{k: v for k, v in credentials.items() if v or k not in secret}}
    provider.set_credentials(updated)
    provider.display_name = form.cleaned_data["display_name"] or provider.display_name
    provider.endpoint = (form.cleaned_data["endpoint"] or form.kind.endpoint).rstrip("/")
    if validated:
        provider.last_validated_at = timezone.now()
    provider.save()
    after = _state(provider)
    key_changed = any(credentials[name] for name in secret)
    action = "credentials_updated" if key_changed else "provider_updated"
    log.record(request.user, action, provider, before=before, after=after)
    messages.success(request, f"{provider.display_name} saved.")


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
    return {"name": provider.display_name, "kind": provider.kind, "endpoint": provider.endpoint,
            "enabled": provider.enabled, "masked_key": provider.masked_key()}  # fmt: skip


# ---- custom providers: a kind of provider defined in the browser, stored in the database


@require_http_methods(["GET", "POST"])
@login_required
def custom_new(request: HttpRequest) -> HttpResponse:
    """ "+ Add provider → Custom provider": define the kind, then connect it like any other."""
    team = require_admin(request)
    taken = {kind.id for kind in registry.kinds()}
    form = CustomProviderForm(request.POST or None, dialects=registry.dialects(), taken=taken)
    if request.method == "POST" and form.is_valid():
        definition = form.entry()
        row = CustomKind.objects.create(id=form.definition.id, team=team, definition=definition)
        log.record(request.user, "custom_provider_defined", row, team=team, after=definition)
        return redirect("providers:connect-kind", row.id)
    return render(request, "providers/custom.html", {"form": form})


def _custom_kind_for_admin(request: HttpRequest, kind_id: str) -> CustomKind:
    team = require_admin(request)
    row = get_object_or_404(CustomKind, pk=kind_id)
    if not (request.user.is_staff or row.team_id == team.pk):
        raise PermissionDenied
    return row


@require_http_methods(["GET", "POST"])
@login_required
def custom_edit(request: HttpRequest, kind_id: str) -> HttpResponse:
    """Change a custom definition; providers set up from it get its new endpoint default and models."""
    row = _custom_kind_for_admin(request, kind_id)
    form = CustomProviderForm(
        request.POST or None, dialects=registry.dialects(), editing=row.id,
        initial=CustomProviderForm.initial_from(row.definition) | {"id": row.id},
    )  # fmt: skip
    if request.method == "POST" and form.is_valid():
        before, row.definition = row.definition, form.entry()
        with transaction.atomic():
            row.save()
            for provider in Provider.objects.filter(kind=row.id):
                registry.seed_models(provider, form.definition)
            log.record(request.user, "custom_provider_updated", row, before=before, after=row.definition)
        messages.success(request, f"{form.definition.name} saved.")
        return redirect("providers:settings")
    return render(request, "providers/custom.html", {"form": form, "row": row})


@require_http_methods(["GET", "POST"])
@login_required
def custom_delete(request: HttpRequest, kind_id: str) -> HttpResponse:
    row = _custom_kind_for_admin(request, kind_id)
    in_use = list(Provider.objects.filter(kind=row.id))
    if request.method == "POST" and not in_use:
        with transaction.atomic():
            log.record(request.user, "custom_provider_removed", row, before=row.definition)
            row.delete()
        messages.success(request, f"{row} removed.")
        return redirect("providers:settings")
    return render(request, "providers/custom_delete.html", {"row": row, "in_use": in_use})
