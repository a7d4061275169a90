"""A fresh install has no user: every page leads to creating the first admin in the browser."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from accounts.models import User

OPEN_PATHS = ("/setup/", "/static/", "/favicon.ico")


class FirstRunMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # A signed-in user proves there are users; only anonymous page views pay for the query.
        if (
            not request.path.startswith(OPEN_PATHS)
            and not request.user.is_authenticated
            and not User.objects.exists()
        ):
            return redirect("accounts:first-admin")
        return self.get_response(request)
