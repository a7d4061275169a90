"""Websocket routes under ws/."""

from django.urls import path

from usage.consumers import RunConsumer

websocket_urlpatterns = [
    path("ws/runs/<uuid:run_id>/", RunConsumer.as_asgi()),
]
