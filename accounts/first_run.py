"""A fresh install has no user: every page leads to creating the first admin in the browser."""

from __future__ import annotations

from collections.abc import Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from accounts.models import User

OPEN_PATHS = ("/setup/", "/static/", "/favicon.ico", "/v1/", "/healthz", "/readyz", "/metrics")


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
        if _needs_first_admin(request):
            return redirect("accounts:first-admin")
        return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(OPEN_PATHS) and await sync_to_async(_needs_first_admin)(request):
            return redirect("accounts:first-admin")
        return await self.get_response(request)


def _needs_first_admin(request: HttpRequest) -> bool:
    # A signed-in user proves there are users; only anonymous page views pay for the query.
    return (
        not request.path.startswith(OPEN_PATHS)
        and not request.user.is_authenticated
        and not User.objects.exists()
    )
