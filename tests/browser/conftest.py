"""Browser tests: the real ASGI app under daphne on the test database, driven by Debian's Chromium."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import database_url_for_subprocesses

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def hub_url(django_db_setup, static_files) -> Iterator[str]:
    """The app served by daphne in its own process, reading and writing the test database."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_subprocesses(),
        "LLMHUB_DATA_DIR": str(settings.DATA_DIR),
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = (ARTIFACTS / "daphne.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "llmhub.asgi:application"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daphne did not start; see {ARTIFACTS / 'daphne.log'}") from None
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(10)
    log.close()


@pytest.fixture
async def page(hub_url) -> AsyncIterator:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = await browser.new_context(base_url=hub_url, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(10_000)
        yield await context.new_page()
        await browser.close()


AXE = ROOT / "var" / "axe" / "axe.min.js"


async def add_axe(context) -> None:
    """Load axe-core into every page of a context, before the page's own scripts. An init script
    is not subject to the page's Content-Security-Policy."""
    if not AXE.exists():
        raise RuntimeError(
            f"{AXE} is missing: run `make var/axe/axe.min.js` (axe-core from the npm registry)"
        )
    await context.add_init_script(path=AXE)


async def serious_accessibility_problems(page) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now, one line each."""
    results = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{page.url}: {v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]


async def snapshot(page, name: str) -> None:
    """Keep a screenshot of a step as a test artifact (test-artifacts/browser/NAME.png)."""
    await page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
