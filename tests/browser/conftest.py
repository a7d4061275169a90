"""Browser tests: the real ASGI app under daphne on the test database, driven by Debian's Chromium."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


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
