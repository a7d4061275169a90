"""/healthz, /readyz and /metrics: for load balancers, orchestrators and Prometheus."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from ops import health, metrics

# A request relayed by a proxy on this machine comes from loopback too: these headers betray it.
PROXY_HEADERS = ("x-forwarded-for", "x-real-ip", "forwarded")


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """The process answers (liveness): nothing else is checked."""
    return JsonResponse({"status": "ok"})


@require_GET
@never_cache
async def readyz(request: HttpRequest) -> JsonResponse:
    report = await health.readiness()
    return JsonResponse(report, status=200 if report["ready"] else 503)


@require_GET
@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    if settings.LLMHUB_METRICS_TOKEN:
        if not _bearer_matches(request, settings.LLMHUB_METRICS_TOKEN):
            response = HttpResponse(
                "A valid metrics token is required.\n", status=401, content_type="text/plain"
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    elif not _direct_loopback(request):
        return HttpResponse(
            "Metrics are served to this machine only. Set LLMHUB_METRICS_TOKEN to scrape from elsewhere.\n",
            status=403,
            content_type="text/plain",
        )
    return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)


def _bearer_matches(request: HttpRequest, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _direct_loopback(request: HttpRequest) -> bool:
    if any(header in request.headers for header in PROXY_HEADERS):
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False
