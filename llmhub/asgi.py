"""ASGI entry point: HTTP through Django, websockets through Channels' routers."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmhub.settings")
# Django's app first: it populates the app registry before any consumer imports a model.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from llmhub.body_limit import BodyLimitMiddleware  # noqa: E402
from llmhub.checks import StartupGuard  # noqa: E402
from llmhub.origin import SameOriginValidator  # noqa: E402
from providers.network import NoteOwnAddressMiddleware  # noqa: E402
from usage.routing import websocket_urlpatterns  # noqa: E402

application = StartupGuard(
    ProtocolTypeRouter(
        {
            "http": NoteOwnAddressMiddleware(BodyLimitMiddleware(django_asgi_app)),
            "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        }
    )
)
