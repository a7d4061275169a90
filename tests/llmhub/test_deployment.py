"""Deployment: the documented production environment passes `check --deploy`; every page has a
Content-Security-Policy and no template carries inline script; secrets shown once are not cached."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway import keys

ROOT = Path(__file__).resolve().parents[2]


def documented_environment() -> dict[str, str]:
    """The `export NAME=value` lines of the README's "Running it on a network" section."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Running it on a network", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^export (\w+)=(\S+)", section, re.M))


def test_check_deploy_is_clean_with_the_documented_production_environment(tmp_path):
    environment = documented_environment()
    assert {"LLMHUB_HTTPS", "DJANGO_ALLOWED_HOSTS", "LLMHUB_FORWARDED_PROTO_HEADER"} <= set(environment)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMHUB_", "DJANGO_", "DATABASE_URL"))}
    env |= environment | {"LLMHUB_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "llmhub.settings"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_without_https_the_deploy_check_says_what_is_missing(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMHUB_", "DJANGO_", "DATABASE_URL"))}
    env |= {"LLMHUB_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "llmhub.settings"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "security.W004" in result.stderr and "security.W012" in result.stderr


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", ["/accounts/login/", "/", "/providers/settings/", "/settings/api-keys/", "/admin/"]
)
def test_every_page_carries_a_policy_without_inline_script(alice_client, url):
    response = alice_client.get(url, follow=True)
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_no_template_has_inline_script_styles_or_handlers():
    offences = []
    for template in (ROOT / "templates").rglob("*.html"):
        text = template.read_text()
        for pattern in (
            r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>",
            r"\son[a-z]+=",
            r"\sstyle=",
        ):
            offences += [f"{template.relative_to(ROOT)}: {m.group()}" for m in re.finditer(pattern, text)]
    assert offences == []


@pytest.mark.django_db
def test_the_page_showing_a_new_api_key_is_not_cached(alice_client, alpha):
    alice_client.post("/settings/api-keys/", {"name": "ci"})
    response = alice_client.get("/settings/api-keys/")
    assert "llmh-" in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert keys.ApiKey.objects.count() == 1
