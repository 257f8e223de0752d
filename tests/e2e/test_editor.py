"""Two Chromium pages on the shared editor (/demo/editor): both type at once and converge,
and each shows the other's cursor with its name."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pycrdt
from playwright.async_api import Browser, Page

from hubbub.apps import collab
from hubbub.testing import running_server


async def _open(browser: Browser, url: str) -> Page:
    page = await browser.new_page(viewport={"width": 900, "height": 520})
    await page.goto(url)
    await page.wait_for_function("window.__editor.ready === true", timeout=10000)
    await page.click(".cm-content")
    return page


async def test_two_editor_pages_typing_at_once_converge_and_show_each_others_cursor(
    browser: Browser, artifacts: Path
) -> None:
    async with running_server() as srv:
        ann = await _open(browser, f"{srv.http_url}/demo/editor?doc=e2e&user=ann")
        bob = await _open(browser, f"{srv.http_url}/demo/editor?doc=e2e&user=bob")
        await asyncio.gather(
            ann.keyboard.type("Ann types this line. ", delay=15),
            bob.keyboard.type("Bob types at the same time. ", delay=15),
        )
        await ann.keyboard.press("Enter")
        await ann.keyboard.type("ann's second line")
        for page in (ann, bob):
            await page.wait_for_function(
                "() => { const t = window.__editor.ytext.toString();"
                " return t.includes('Ann types this line. ')"
                " && t.includes('Bob types at the same time. ')"
                ' && t.includes("ann\'s second line") }',
                timeout=10000,
            )
        texts = [await p.evaluate("window.__editor.ytext.toString()") for p in (ann, bob)]
        shown = [await p.evaluate("window.__editor.view.state.doc.toString()") for p in (ann, bob)]
        assert texts[0] == texts[1] == shown[0] == shown[1]
        room = collab.of(srv.hub).rooms.open["e2e"]
        await room.flushed()
        assert str(room.doc.get("content", type=pycrdt.Text)) == texts[0]

        # Each page draws the other's cursor, labelled with the other's name.
        await ann.wait_for_selector(".cm-ySelectionInfo:has-text('bob')", timeout=10000)
        await bob.wait_for_selector(".cm-ySelectionInfo:has-text('ann')", timeout=10000)
        assert await ann.locator(".person").all_text_contents() in (["ann", "bob"], ["bob", "ann"])
        await ann.screenshot(path=str(artifacts / "editor-ann.png"))
        await bob.screenshot(path=str(artifacts / "editor-bob.png"))
