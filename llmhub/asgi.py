"""ASGI entry point: HTTP through Django, websockets through Channels' routers."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmhub.settings")
# Django's app first: it populates the app registry before any consumer imports a model.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from ops import maintenance  # noqa: E402
from usage.routing import websocket_urlpatterns  # noqa: E402

# maintenance.serving() starts the periodic jobs (retention) once the server runs.
application = maintenance.serving(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        }
    )
)
