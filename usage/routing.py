"""Websocket routes under ws/ (runs stream here once runs exist)."""

from django.urls import URLPattern

websocket_urlpatterns: list[URLPattern] = []
