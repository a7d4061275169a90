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
        self.has_users = False  # once true, it stays true: no query per request after that

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not self.has_users:
            self.has_users = User.objects.exists()
            if not self.has_users and not request.path.startswith(OPEN_PATHS):
                return redirect("accounts:first-admin")
        return self.get_response(request)
