"""The live dashboard in real Chromium: paints at once, survives a server-side disconnect."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import Browser, Page

from hubbub.testing import RunningServer, running_server

CHANNELS = [
    f"metrics:{name}"
    for name in ("connections", "messages_in", "messages_out", "cpu", "memory", "loop_lag")
]


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll `check` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def has_figures(srv: RunningServer) -> bool:
    url = f"{srv.http_url}/api/channels/metrics:loop_lag/history?limit=1"
    headers = {"Authorization": f"Bearer {srv.api_key}"}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as r:
        return bool((await r.json())["seq"] >= 1)


async def seqs(page: Page) -> dict[str, list[int]]:
    result: dict[str, list[int]] = await page.evaluate("window.__hubbub.seqs")
    return result


async def state(page: Page, key: str) -> Any:
    return await page.evaluate(f"window.__hubbub && window.__hubbub.{key}")


async def test_dashboard_paints_at_once_and_recovers_every_figure_after_a_drop(
    browser: Browser, artifacts: Path
) -> None:
    async with running_server() as srv:
        await wait_until(lambda: has_figures(srv))
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # Reconnect after 1.5 s, so the server publishes figures the page must recover.
        await page.goto(f"{srv.http_url}/demo/dashboard?reconnectDelay=1500")
        opened = time.monotonic()
        await page.wait_for_function(
            "window.__hubbub && Object.keys(window.__hubbub.values).length === 6", timeout=1000
        )
        assert time.monotonic() - opened < 1.0
        for name in ("Connections", "CPU", "Memory (RSS)", "Event-loop lag"):
            assert await page.get_by_role("heading", name=name).is_visible()
        await page.screenshot(path=str(artifacts / "dashboard-first-second.png"))

        user = await state(page, "userId")
        before = await seqs(page)
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{srv.http_url}/api/users/{user}/disconnect",
                json={},
                headers={"Authorization": f"Bearer {srv.api_key}"},
            ) as r,
        ):
            assert (await r.json())["closed"] == 1
        await page.wait_for_function("window.__hubbub.state === 'reconnecting'", timeout=5000)
        await page.wait_for_function(
            "window.__hubbub.state === 'connected' && window.__hubbub.reconnects === 1",
            timeout=10000,
        )
        # Three more figures on every channel after the reconnect.
        await page.wait_for_function(
            "(before) => Object.entries(window.__hubbub.seqs).every("
            "([c, s]) => s.length >= before[c].length + 3)",
            arg=before,
            timeout=10000,
        )
        after = await seqs(page)
        for channel in CHANNELS:
            received = after[channel]
            assert received == list(range(received[0], received[0] + len(received))), (
                channel,
                received,
            )
        recovered = await state(page, "recovered")
        assert sorted(c for c in recovered if c.startswith("metrics:")) == sorted(CHANNELS)
        assert await state(page, "resets") == []
        assert await page.locator("#reconnects").text_content() == "1"
        assert await page.locator("#state").text_content() == "connected"
        assert errors == []
        await page.screenshot(path=str(artifacts / "dashboard-after-reconnect.png"))
