"""Detours before any page: a fresh install has no user, so every page leads to creating the first
admin; an account made with a temporary password leads to choosing a new one first."""

from __future__ import annotations

from collections.abc import Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from accounts.models import User

OPEN_PATHS = ("/setup/", "/static/", "/favicon.ico", "/v1/", "/healthz", "/readyz", "/metrics")
# What a person with a temporary password may still open: the form itself, and signing out.
PASSWORD_PATHS = ("/accounts/password/", "/accounts/logout/")


class FirstRunMiddleware:
    """Sync and async: under ASGI the API's async views run with no thread hop for this check."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self.is_async:
            return self.__acall__(request)
        detour = _detour(request)
        if detour:
            return redirect(detour)
        return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(OPEN_PATHS):
            detour = await sync_to_async(_detour)(request)
            if detour:
                return redirect(detour)
        return await self.get_response(request)


def _detour(request: HttpRequest) -> str | None:
    if request.path.startswith(OPEN_PATHS):
        return None
    if request.user.is_authenticated:
        # A signed-in user proves there are users; only anonymous page views pay for that query.
        if request.user.must_change_password and not request.path.startswith(PASSWORD_PATHS):
            return reverse("accounts:password-change")
        return None
    return reverse("accounts:first-admin") if not User.objects.exists() else None
