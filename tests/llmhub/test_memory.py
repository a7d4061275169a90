"""What a server process holds in memory (issue 16; bench/memory.py measures it): the server imports
no provider SDK nor test tool and loads no tokenizer before a run needs one; the supervisor of
several workers imports neither daphne nor the app. Each is checked in a fresh interpreter, as the
server starts, from the modules it has imported: deterministic, unlike a figure of RSS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gateway import keys
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from tests.servers import Server

ROOT = Path(__file__).resolve().parents[2]
# Neither the server nor the supervisor needs these: the SDKs and test tools are test dependencies.
NEVER_IN_A_SERVER = ["openai", "anthropic", "pydantic_ai", "pytest", "playwright", "websockets"]

SERVER = """
import json, sys
from daphne import server  # as llmhub/server.py imports it, before the app
import llmhub.asgi
from usage import tokens
print(json.dumps({"modules": sorted(sys.modules), "encodings": tokens.encoding.cache_info().currsize}))
"""

SUPERVISOR = """
import argparse, json, sys
from django.apps import apps
from llmhub import serve
status = serve.supervise(argparse.Namespace(host="127.0.0.1", port=0, workers=2))
print(json.dumps({"status": status, "modules": sorted(sys.modules), "apps_ready": apps.ready}))
"""


def run_fresh(code: str, data_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMHUB_", "DJANGO_", "DATABASE_URL"))}
    env |= {"LLMHUB_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "llmhub.settings"}
    env.pop("REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def top_level(modules: list[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_the_server_imports_no_sdk_and_loads_no_tokenizer_before_a_run(tmp_path):
    started = run_fresh(SERVER, tmp_path)
    assert "daphne" in top_level(started["modules"])  # the check sees what the server imports
    assert top_level(started["modules"]).isdisjoint(NEVER_IN_A_SERVER)
    assert started["encodings"] == 0  # loaded by the first count
    # Imported on first use (the first count, the catalogue's first price): 14 MB of an idle server.
    first_use = ["tiktoken", "regex", "marisa_trie", "genai_prices", "pydantic"]
    assert top_level(started["modules"]).isdisjoint(first_use)


def test_the_supervisor_imports_neither_daphne_nor_the_app(tmp_path):
    # Without REDIS_URL the supervisor refuses to start workers, after reading the settings.
    supervisor = run_fresh(SUPERVISOR, tmp_path)
    assert supervisor["status"] == 2
    assert "django.conf" in supervisor["modules"]
    assert not supervisor["apps_ready"]
    imported = top_level(supervisor["modules"])
    assert imported.isdisjoint(["daphne", "twisted", "channels", "tiktoken", "genai_prices", "httpx"])
    assert imported.isdisjoint(NEVER_IN_A_SERVER)


@pytest.mark.django_db(transaction=True)
def test_a_server_without_redis_url_loads_neither_redis_nor_pyopenssl_nor_cffi(alpha, fake_openai):
    """Redis' client (6 MB) only with REDIS_URL; pyOpenSSL (5 MB) never: the server serves plain
    HTTP and calls providers through Python's ssl module; nor cffi's C parser (1 MB), which only
    autobahn's native websocket frame checks load (llmhub/serve.py). Checked on a live server
    through a run, streamed or not, from everything it imported (python -X importtime)."""
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    auth = {"authorization": f"Bearer {keys.create(alpha, 'memory').secret}"}
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 16}
    server = Server("memory", PYTHONPROFILEIMPORTTIME="1", REDIS_URL="")
    try:
        with httpx.Client(base_url=server.url, headers=auth, timeout=60) as client:
            assert client.post("/v1/chat/completions", json=body).status_code == 200
            assert client.post("/v1/chat/completions", json=body | {"stream": True}).status_code == 200
            assert client.get("/readyz").status_code in (200, 503)
        time.sleep(0.2)  # the last lines written
        log = server.log()
    finally:
        server.stop()
    imported = {
        line.rsplit("|", 1)[1].strip() for line in log.splitlines() if line.startswith("import time:")
    }
    assert {"daphne", "twisted.internet.tcp", "tiktoken"} <= imported  # the check sees the whole run
    # -X importtime lists the imports tried too: Twisted's and autobahn's of OpenSSL and OpenSSL.SSL,
    # which fail. A package that loads imports its own inner modules, which nothing else asks for.
    assert imported & {"OpenSSL._util", "OpenSSL.crypto", "redis.client", "channels_redis.core"} == set()
    assert imported & {"cffi", "pycparser", "autobahn.nvx._utf8validator"} == set()


ARENAS = """
import ctypes, threading
from llmhub import memory
memory.limit_arenas()
together = threading.Barrier(8)
def allocate():  # each thread's first allocation while the 7 others are alive (an exited one hands its arena on)
    kept = [ctypes.create_string_buffer(4096) for _ in range(200)]
    together.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads: thread.start()
for thread in threads: thread.join()
ctypes.CDLL(None).malloc_stats()  # one "Arena N:" paragraph an arena, on stderr
"""


def test_a_server_process_keeps_two_malloc_arenas_however_many_threads_allocate():
    """glibc makes an arena for each thread that allocates while the others are busy, each holding
    its own free memory; a server keeps two (llmhub/memory.py)."""
    done = subprocess.run(
        [sys.executable, "-c", ARENAS], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    arenas = [line for line in done.stderr.splitlines() if line.startswith("Arena ")]
    assert 1 <= len(arenas) <= 2, done.stderr
