"""Custom providers: a kind of provider defined in the browser ("+ Add provider → Custom provider"),
stored in the database, then connected like any other."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from accounts.teams import require_admin
from audit import log
from providers.forms import CustomProviderForm
from providers.models import CustomKind, Provider
from providers.registry import registry


@require_http_methods(["GET", "POST"])
@login_required
def custom_new(request: HttpRequest) -> HttpResponse:
    """ "+ Add provider → Custom provider": define the kind, then connect it like any other."""
    team = require_admin(request)
    taken = {kind.id for kind in registry.kinds()}
    form = CustomProviderForm(
        request.POST or None, dialects=registry.dialects(), taken=taken, private_network=request.user.is_staff
    )
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
        request.POST or None,
        dialects=registry.dialects(),
        editing=row.id,
        private_network=request.user.is_staff,
        initial=CustomProviderForm.initial_from(row.definition) | {"id": row.id},
    )
    if request.method == "POST" and form.is_valid():
        before, row.definition = row.definition, form.entry()
        providers = list(Provider.objects.filter(kind=row.id))
        with transaction.atomic():
            row.save()
            for provider in providers:
                registry.seed_models(provider, form.definition)
            log.record(request.user, "custom_provider_updated", row, before=before, after=row.definition)
        messages.success(request, f"{form.definition.name} saved.")
        moved = [
            p.display_name
            for p in providers
            if p.credentials_encrypted and _key_moved(before, row.definition)
        ]
        if moved:
            messages.warning(
                request,
                f"Enter the key again for {', '.join(moved)}: a saved key is only sent "
                "with the key header and headers it was saved with.",
            )
        return redirect("providers:settings")
    return render(request, "providers/custom.html", {"form": form, "row": row})


def _key_moved(before: dict, after: dict) -> bool:
    return any(before.get(name) != after.get(name) for name in ("auth_header", "auth_scheme", "headers"))


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
