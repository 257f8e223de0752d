"""The notification center in Chromium: two tabs of one user keep the same badge, live."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, Page

from hubbub.apps import notify
from hubbub.core.notices import Notice
from hubbub.testing import running_server


async def badge(page: Page) -> str:
    return str(await page.text_content("#badge"))


async def wait_badge(page: Page, count: int) -> None:
    await page.wait_for_function(
        "(n) => document.getElementById('badge').textContent === String(n)",
        arg=count,
        timeout=10000,
    )


async def test_two_tabs_of_one_user_show_the_same_badge_as_notifications_arrive_and_are_read(
    browser: Browser, artifacts: Path
) -> None:
    async with running_server() as srv:
        service = notify.service_of(srv.hub)
        context = await browser.new_context(viewport={"width": 1000, "height": 700})
        tabs = [await context.new_page() for _ in range(2)]
        for tab in tabs:
            await tab.goto(f"{srv.http_url}/demo/notifications?user=alice")
            await tab.wait_for_function("window.__hubbub.ready === true", timeout=10000)
            assert await badge(tab) == "0"

        for n, priority in enumerate(("low", "normal", "high")):
            await service.create(
                Notice(user_id="alice", type="demo.build", title=f"Build {n}", priority=priority)
            )
        for tab in tabs:
            await wait_badge(tab, 3)
            titles = await tab.locator("#list li .title").all_text_contents()
            assert titles == ["Build 2", "Build 1", "Build 0"]
            toasts = await tab.evaluate("window.__hubbub.toasts.map((t) => t.priority)")
            assert toasts == ["normal", "high"]  # low makes no toast

        first, second = tabs
        await (
            first.locator("#list li", has_text="Build 1").locator("[data-action=mark-read]").click()
        )
        for tab in tabs:
            await wait_badge(tab, 2)
            await tab.locator("#list li.read", has_text="Build 1").wait_for(timeout=10000)
        await second.screenshot(path=str(artifacts / "notifications-second-tab.png"))

        await second.click("#read-all")
        for tab in tabs:
            await wait_badge(tab, 0)
        assert await first.locator("#list li.unread").count() == 0

        # The page itself sends one (development mode lets a user notify themselves).
        await first.fill("#send input[name=title]", "Disk almost full")
        await first.select_option("#send select[name=priority]", "critical")
        await first.click("#send button")
        for tab in tabs:
            await wait_badge(tab, 1)
            await tab.locator(".toast.p-critical", has_text="Disk almost full").wait_for()
        await first.screenshot(path=str(artifacts / "notifications-first-tab.png"))

        page = await service.page("alice")
        assert page.unread == 1 and page.notifications[0]["priority"] == "critical"
        # Chromium offers the Push API: the page offers to subscribe this device.
        assert await first.evaluate("window.__hubbub.push") == "offered"
        assert await first.is_visible("#enable-push")
        await context.close()
