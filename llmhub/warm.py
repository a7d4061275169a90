"""What a server process's first requests would pay once, paid before it serves them.

A fresh server used to do these at its first request, on the event loop, where every request of a
first burst waited for them (100 concurrent requests at a fresh process: each took 1.6 to 2.7 s,
against ~10 ms warm; measured by bench/first_burst.py, issue 16):

- the URLconf: Django imports it at its first request, and with it every view module: ~160 ms of
  CPU, 134 modules (not Redis' client, loaded only with REDIS_URL);
- the API's fixed routes (llmhub/api_handler.py), taken from it;
- the TLS context every provider connection uses (providers/network.py): the CA bundle parsed;
- the idna codec, which yarl (aiohttp's URLs, providers/transport.py) loads for the first host
  it reads.

Together ~0.35 s of CPU and ~11 MB, which a server holds anyway once it has served a request (or
answered /healthz). Not the tokenizer (usage/tokens.py, usage/bpe.py): the first count loads it
(a few MB with the regex module and tiktoken's list of models, a few milliseconds).

Last, what the process holds once it has set up is frozen out of the garbage collector's reach
(gc.freeze): the modules, classes and functions of Django, daphne and the app, ~110,000 objects
that live as long as the process. A full collection went through all of them each time, ~20 ms
idle and ~30 ms under load, during which the event loop served nothing (three in a run of
bench/gateway.py, each some request's p99); with them frozen, one goes through what requests made:
~4 ms under load.
"""

import encodings.idna  # noqa: F401 - loaded here, not at a first request (see above)
import gc

from django.urls import get_resolver

from llmhub.api_handler import fixed_routes
from providers import network


def before_serving() -> None:
    fixed_routes(get_resolver())  # imports the URLconf, and with it every view
    network.tls_context()
    gc.collect()  # what setting up left for the collector goes, not frozen with the rest
    gc.freeze()
