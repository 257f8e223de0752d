"""Two browser pages on the protocol console: what one publishes, the other gets once, in order."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser

from hubbub.testing import running_server

COUNT = 200


async def test_two_hundred_events_from_one_page_reach_the_other_once_and_in_order(
    browser: Browser, artifacts: Path
) -> None:
    async with running_server() as srv:
        reader = await browser.new_page()
        writer = await browser.new_page()
        await reader.goto(f"{srv.http_url}/demo/console?user=reader")
        await writer.goto(f"{srv.http_url}/demo/console?user=writer")
        for page in (reader, writer):
            await page.wait_for_function("window.__hubbub.ready === true", timeout=5000)
        await reader.evaluate("window.__hubbub.client.subscribe('e2e-feed')")

        seqs = await writer.evaluate(
            """async (count) => {
                const client = window.__hubbub.client;
                const sent = [];
                for (let n = 0; n < count; n++) sent.push(client.publish('e2e-feed', {n}));
                return Promise.all(sent);
            }""",
            COUNT,
        )
        assert seqs == list(range(1, COUNT + 1))

        await reader.wait_for_function(
            "(count) => window.__hubbub.received.length >= count", arg=COUNT, timeout=10000
        )
        await reader.evaluate("window.__hubbub.client.ping()")  # anything late has arrived now
        received = await reader.evaluate(
            "window.__hubbub.received.filter((e) => e.channel === 'e2e-feed')"
        )
        assert [e["data"]["n"] for e in received] == list(range(COUNT))
        assert [e["seq"] for e in received] == list(range(1, COUNT + 1))
        await reader.screenshot(path=str(artifacts / "console-reader.png"))
