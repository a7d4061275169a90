"""What a server holds once it has set up is out of the garbage collector's reach (llmhub/warm.py):
a full collection, during which the event loop serves nothing, goes through what requests made,
not through Django's, daphne's and the app's ~110,000 objects (~20 ms each time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A server's set-up, as llmhub/server.py does it before it listens, then what a full collection
# would have to go through.
SET_UP = """
import gc, json
import django
django.setup()
import daphne.server
from llmhub.asgi import application
from llmhub import warm
warm.before_serving()
print(json.dumps({"frozen": gc.get_freeze_count(), "tracked": len(gc.get_objects())}))
"""


def test_a_full_collection_after_the_set_up_goes_through_nothing_it_made(tmp_path):
    env = os.environ | {"DJANGO_SETTINGS_MODULE": "llmhub.settings", "LLMHUB_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", SET_UP], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout.splitlines()[-1])
    assert counts["frozen"] > 50_000
    assert counts["tracked"] < 1_000
