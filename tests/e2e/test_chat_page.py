"""The chat page in real Chromium: two people, each in their own browser context."""

from __future__ import annotations

import base64
import re
import struct
import zlib
from pathlib import Path

import aiohttp
from playwright.async_api import Browser, Page, expect

from hubbub.testing import RunningServer, running_server

WINDOW = {"width": 900, "height": 640}
WAIT = 10_000  # ms for any one thing to show


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real PNG of one colour, so the browser can decode and draw it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


async def open_chat(browser: Browser, srv: RunningServer, user: str, errors: list[str]) -> Page:
    context = await browser.new_context(viewport=WINDOW)
    page = await context.new_page()
    page.on("pageerror", lambda exc: errors.append(f"{user}: {exc}"))
    await page.goto(f"{srv.http_url}/demo/chat?user={user}")
    await expect(page.locator("#state")).to_have_text("connected", timeout=WAIT)
    await page.wait_for_function("window.__hubbub.ready === true", timeout=WAIT)
    return page


async def side_by_side(browser: Browser, pages: list[Page], path: Path) -> None:
    """One picture of several windows next to each other."""
    shots = [base64.b64encode(await p.screenshot()).decode() for p in pages]
    board = await browser.new_page(
        viewport={"width": WINDOW["width"] * len(pages) + 30, "height": 700}
    )
    images = "".join(
        f'<img src="data:image/png;base64,{s}" style="border:1px solid #888">' for s in shots
    )
    await board.set_content(f'<body style="margin:8px;display:flex;gap:10px">{images}</body>')
    await board.wait_for_function("[...document.images].every((i) => i.complete)")
    await board.screenshot(path=str(path), full_page=True)
    await board.close()


async def test_two_people_chat_with_typing_indicator_and_read_ticks_in_both_windows(
    browser: Browser, artifacts: Path
) -> None:
    errors: list[str] = []
    async with running_server() as srv:
        alice = await open_chat(browser, srv, "alice", errors)
        bob = await open_chat(browser, srv, "bob", errors)

        # Alice starts a conversation with Bob: both list it, each seeing the other online.
        await alice.fill("#newMembers", "bob")
        await alice.click("#newConversation button")
        at_alice = alice.locator(".conversation", has_text="bob")
        at_bob = bob.locator(".conversation", has_text="alice")
        await expect(at_alice).to_be_visible(timeout=WAIT)
        await expect(at_bob).to_be_visible(timeout=WAIT)
        await expect(at_alice.locator(".dot")).to_have_class(re.compile(r"\bonline\b"))
        await expect(at_bob.locator(".dot")).to_have_class(re.compile(r"\bonline\b"))
        await expect(alice.locator("#paneTitle")).to_have_text("bob")

        # Alice types: Bob sees it in his list before he opens anything.
        await alice.locator("#text").press_sequentially("Hi Bob, lunch at noon?")
        await expect(at_bob.locator(".preview")).to_have_text("alice is typing…", timeout=WAIT)
        await alice.locator("#text").press("Enter")
        await expect(at_bob.locator(".preview")).to_have_text(
            "alice: Hi Bob, lunch at noon?", timeout=WAIT
        )
        await expect(at_bob.locator(".badge")).to_have_text("1")
        ticks = alice.locator(".msg.mine", has_text="lunch at noon").locator(".ticks")
        await expect(ticks).to_have_text("✓", timeout=WAIT)  # stored, not read yet

        # Bob opens the conversation: the message is read, and Alice sees it so.
        await at_bob.click()
        await expect(bob.locator(".msg", has_text="Hi Bob, lunch at noon?")).to_be_visible()
        await expect(at_bob.locator(".badge")).to_be_hidden(timeout=WAIT)
        await expect(ticks).to_have_text("✓✓", timeout=WAIT)
        await expect(ticks).to_have_attribute("title", "read by bob")

        # Bob answers while Alice has the conversation open.
        await bob.locator("#text").press_sequentially("Sure, see you there")
        await expect(alice.locator("#typing")).to_have_text("bob is typing…", timeout=WAIT)
        await bob.locator("#text").press("Enter")
        await expect(alice.locator(".msg", has_text="Sure, see you there")).to_be_visible(
            timeout=WAIT
        )
        await expect(alice.locator("#typing")).to_have_text("")
        reply_ticks = bob.locator(".msg.mine", has_text="see you there").locator(".ticks")
        await expect(reply_ticks).to_have_text("✓✓", timeout=WAIT)
        await expect(at_alice.locator(".badge")).to_be_hidden()

        shot = artifacts / "chat-two-users.png"
        shot.unlink(missing_ok=True)
        await side_by_side(browser, [alice, bob], shot)
        assert shot.stat().st_size > 10_000

        # Read ticks come from the stored read positions: they survive a reload.
        await alice.reload()
        await alice.locator(".conversation", has_text="bob").click()
        reloaded = alice.locator(".msg.mine", has_text="lunch at noon").locator(".ticks")
        await expect(reloaded).to_have_text("✓✓", timeout=WAIT)
        assert errors == []


async def test_older_messages_load_on_scroll_up_and_attachments_show_inline_or_download(
    browser: Browser, artifacts: Path
) -> None:
    errors: list[str] = []
    async with running_server() as srv:
        api = {"Authorization": f"Bearer {srv.api_key}"}
        base = f"{srv.http_url}/api/conversations"
        async with aiohttp.ClientSession(headers=api) as http:
            async with http.post(base, json={"members": ["carol", "dan"]}) as r:
                conversation = (await r.json())["conversationId"]
            for n in range(1, 71):
                body = {"senderId": "dan", "clientMessageId": f"m{n}", "content": f"note {n}"}
                async with http.post(f"{base}/{conversation}/messages", json=body) as r:
                    assert r.status == 201

        carol = await open_chat(browser, srv, "carol", errors)
        await carol.locator(".conversation", has_text="dan").click()
        notes = carol.locator("#list .msg")
        await expect(notes).to_have_count(30, timeout=WAIT)
        await expect(notes.last).to_contain_text("note 70")
        for shown in (60, 70):
            await carol.locator("#messages").evaluate("(box) => { box.scrollTop = 0; }")
            await expect(notes).to_have_count(shown, timeout=WAIT)
        await expect(notes.first).to_contain_text("note 1")
        await expect(carol.locator("#older")).to_have_text("the beginning of the conversation")

        # An image shows inline; a text file is a link that downloads with the token.
        await carol.set_input_files(
            "#file",
            files=[
                {"name": "dot.png", "mimeType": "image/png", "buffer": png(40, 30, (200, 30, 30))},
                {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"bring snacks\n"},
            ],
        )
        await expect(carol.locator(".chip", has_text="attached notes.txt")).to_be_visible(
            timeout=WAIT
        )
        await expect(carol.locator(".chip", has_text="attached dot.png")).to_be_visible()
        await carol.fill("#text", "two files")
        await carol.press("#text", "Enter")

        dan = await open_chat(browser, srv, "dan", errors)
        await dan.locator(".conversation", has_text="carol").click()
        sent = dan.locator(".msg", has_text="two files")
        image = sent.locator("img.attachment-image")
        await expect(image).to_be_visible(timeout=WAIT)
        await expect(image).to_have_attribute("src", re.compile("^blob:"), timeout=WAIT)
        await dan.wait_for_function(
            "() => { const i = document.querySelector('img.attachment-image');"
            " return i && i.complete && i.naturalWidth === 40; }",
            timeout=WAIT,
        )
        async with dan.expect_download() as download_info:
            await sent.locator("a.attachment-file", has_text="notes.txt").click()
        download = await download_info.value
        assert download.suggested_filename == "notes.txt"
        saved = artifacts / "chat-download.txt"
        await download.save_as(saved)
        assert saved.read_bytes() == b"bring snacks\n"
        assert errors == []
