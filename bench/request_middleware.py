"""What ops.middleware.RequestMiddleware (request id, request counter and histogram, log line) costs
a request, in CPU time: the same requests through a bare view and through the middleware.

    .venv/bin/python bench/request_middleware.py [text|json] [--requests 5000]

CPU time of this process (not wall time), best of 7 rounds: other work on the machine does not count.
Log lines are formatted as configured and written to memory.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("format", nargs="?", default="text", choices=["text", "json"])
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmhub.settings")
    os.environ["LLMHUB_LOG_FORMAT"] = args.format
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.http import HttpResponse
    from django.test import RequestFactory
    from django.urls import resolve

    from ops.middleware import RequestMiddleware

    logging.getLogger().handlers[0].stream = io.StringIO()
    match = resolve("/v1/models")

    def view(request):
        request.resolver_match = match
        return HttpResponse("ok")

    requests = [
        RequestFactory().get("/v1/models", HTTP_X_REQUEST_ID="ci-job-1") for _ in range(args.requests)
    ]

    def cost(handler) -> float:
        best = float("inf")
        for _ in range(7):
            started = time.process_time()
            for request in requests:
                handler(request)
            best = min(best, time.process_time() - started)
        return best / len(requests) * 1e6

    bare, wrapped = cost(view), cost(RequestMiddleware(view))
    print(f"{args.format} log lines: the middleware adds {wrapped - bare:.1f} us of CPU a request")
    logging.getLogger("llmhub.requests").setLevel(logging.WARNING)
    quiet = cost(RequestMiddleware(view))
    print(f"without the request line (LLMHUB_LOG_LEVEL=WARNING): {quiet - bare:.1f} us")


if __name__ == "__main__":
    main()
