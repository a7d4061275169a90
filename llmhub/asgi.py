"""ASGI entry point: HTTP through Django (the API's errors always JSON; /v1/ on its own, shorter
middleware list: llmhub/api_handler.py), websockets through Channels' routers. `python -m
llmhub.serve` serves it."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmhub.settings")
# Django's app first: it populates the app registry before any consumer imports a model.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from gateway.errors import JsonErrors  # noqa: E402
from llmhub.api_handler import ApiHandler, ByPath  # noqa: E402
from llmhub.body_limit import BodyLimitMiddleware  # noqa: E402
from llmhub.checks import StartupGuard  # noqa: E402
from llmhub.origin import SameOriginValidator  # noqa: E402
from ops import maintenance  # noqa: E402
from providers.network import NoteOwnAddressMiddleware  # noqa: E402
from usage import records  # noqa: E402
from usage.routing import websocket_urlpatterns  # noqa: E402

records.start_replaying()  # settlements spooled while the database was down: written when it is back

# maintenance.serving() starts the periodic jobs (retention) once the server runs.
application = StartupGuard(
    maintenance.serving(
        ProtocolTypeRouter(
            {
                "http": JsonErrors(
                    NoteOwnAddressMiddleware(BodyLimitMiddleware(ByPath(ApiHandler(), django_asgi_app)))
                ),
                "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
            }
        )
    )
)
