"""A small y-websocket client in Python (pycrdt + aiohttp), for tests and benchmarks of
collaborative documents (`/collab/{name}`).

It speaks the protocol the way the JavaScript provider does: on open it sends sync
step 1 and answers the server's step 1 with step 2; it applies what arrives and sends
every local change as an update. Subclasses change how local changes are sent
(`_send_local`) and see each update applied (`_updated`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pycrdt

from hubbub.apps.collab import protocol
from hubbub.apps.collab.protocol import AwarenessEntry


class YClient:
    """One connection to `/collab/{name}` with its own document."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.doc: pycrdt.Doc[Any] = pycrdt.Doc()
        self.synced = asyncio.Event()
        self.awareness: dict[int, AwarenessEntry] = {}
        self.received: list[protocol.Message] = []
        self.closed: tuple[int | None, str] | None = None
        self._applying = False
        self.doc.observe(self._on_change)
        self._reader = asyncio.get_running_loop().create_task(self._read())

    def text(self, name: str = "t") -> pycrdt.Text:
        text: pycrdt.Text = self.doc.get(name, type=pycrdt.Text)
        return text

    def _on_change(self, event: pycrdt.TransactionEvent) -> None:
        if not self._applying and not self.ws.closed:
            self._send_local(protocol.sync_update(event.update))

    def _send_local(self, message: bytes) -> None:
        """Send a local change (at once, by default)."""
        asyncio.get_running_loop().create_task(self.ws.send_bytes(message))

    def _updated(self) -> None:
        """An update from the server was applied."""

    def _apply(self, update: bytes) -> None:
        self._applying = True
        try:
            self.doc.apply_update(update)
        finally:
            self._applying = False

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.BINARY:
                continue
            message = protocol.decode_message(msg.data)
            self.received.append(message)
            if isinstance(message, protocol.SyncStep1):
                await self.ws.send_bytes(
                    protocol.sync_step2(self.doc.get_update(message.state_vector))
                )
            elif isinstance(message, protocol.SyncStep2):
                self._apply(message.update)
                self.synced.set()
            elif isinstance(message, protocol.SyncUpdate):
                self._apply(message.update)
                self._updated()
            elif isinstance(message, protocol.AwarenessMessage):
                for entry in protocol.decode_awareness(message.update):
                    self.awareness[entry.client_id] = entry
        self.closed = (self.ws.close_code, "")

    async def set_awareness(self, client_id: int, clock: int, state: str) -> None:
        entry = AwarenessEntry(client_id, clock, state)
        await self.ws.send_bytes(protocol.awareness_message(protocol.encode_awareness([entry])))

    def stop_reading(self) -> None:
        self._reader.cancel()

    async def wait_closed(self, timeout: float = 5.0) -> int | None:
        async with asyncio.timeout(timeout):
            await self._reader
        return self.ws.close_code


@asynccontextmanager
async def yclient(
    http_url: str, name: str, token: str, *, sync: bool = True
) -> AsyncIterator[YClient]:
    """A connected client of document `name`; with `sync`, once the first sync is done."""
    url = http_url.replace("http://", "ws://") + f"/collab/{name}?token={token}"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        client = YClient(ws)
        await ws.send_bytes(protocol.sync_step1(client.doc.get_state()))
        if sync:
            async with asyncio.timeout(5):
                await client.synced.wait()
        try:
            yield client
        finally:
            await ws.close()
            client.stop_reading()
