"""Real Chromium (the system one, /usr/bin/chromium) driven by Playwright, headless."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

playwright_api = pytest.importorskip("playwright.async_api")


def _ensure_chromium() -> None:
    if not CHROMIUM.exists():
        subprocess.run([str(ROOT / "scripts" / "install-browser")], check=True, timeout=600)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
async def browser() -> AsyncIterator[playwright_api.Browser]:
    _ensure_chromium()
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=ARGS if os.geteuid() == 0 else ARGS[1:],
        )
        try:
            yield browser
        finally:
            await browser.close()
