"""What a server process holds in memory (issue 16; bench/memory.py measures it): the server imports
no provider SDK nor test tool and loads no tokenizer before a run needs one; the supervisor of
several workers imports neither daphne nor the app. Each is checked in a fresh interpreter, as the
server starts, from the modules it has imported: deterministic, unlike a figure of RSS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
    assert started["encodings"] == 0  # o200k_base alone holds 43 MB: loaded by the first count
    # Imported on first use (the first count, the catalogue's first price): 11 MB of an idle server.
    assert top_level(started["modules"]).isdisjoint(["tiktoken", "genai_prices", "pydantic"])


def test_the_supervisor_imports_neither_daphne_nor_the_app(tmp_path):
    # Without REDIS_URL the supervisor refuses to start workers, after reading the settings.
    supervisor = run_fresh(SUPERVISOR, tmp_path)
    assert supervisor["status"] == 2
    assert "django.conf" in supervisor["modules"]
    assert not supervisor["apps_ready"]
    imported = top_level(supervisor["modules"])
    assert imported.isdisjoint(["daphne", "twisted", "channels", "tiktoken", "genai_prices", "httpx"])
    assert imported.isdisjoint(NEVER_IN_A_SERVER)
