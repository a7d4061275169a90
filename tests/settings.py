"""Settings for the test suite: the real ones, with what only tests may change.

pytest-django exports DJANGO_SETTINGS_MODULE, so the servers and commands tests start read these
too (the browser tests' daphne signs in users whose passwords this hasher made).
"""

import os

# The fake providers listen on loopback: tests may reach it like a local Ollama. Exported before the
# settings are read, so processes the tests start inherit it; SSRF tests set the setting to [].
os.environ.setdefault("LLMHUB_ALLOWED_PRIVATE_NETWORKS", "127.0.0.0/8,::1")
# One browser program's origin may call /v1/ (tests/gateway/test_authentication.py).
os.environ.setdefault("LLMHUB_CORS_ORIGINS", "https://notebook.example.test")

from llmhub.settings import *  # noqa: E402, F403

# Hashing was over half the suite's time; no password here protects anything.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
