"""Collaborative editing throughput: 50 editors typing into one Yjs document.

    python benchmarks/collab.py [--editors 50] [--edits 200] [--database sqlite|postgresql]
                                [--out FILE]

The server is one `hubbub serve` process, pinned to CPU 0 when the machine has two
cores and `taskset`; this process holds the editors (y-websocket clients on pycrdt and
aiohttp, on uvloop), pinned to CPU 1. Each editor types `--edits` characters, one
update message each, at places spread through the text, as fast as the event loop
lets it; every editor applies whatever the server sends.

Figures:
- *applied*: updates per second the server took in, stored (appended durably, batched
  per commit) and sent on: total updates / time until the last editor has every one.
- *delivered*: updates per second that reached an editor other than their author
  (updates x (editors - 1) / the same time); the server merges what arrived during one
  commit into one message, so fewer *messages* carry them (also shown).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

import aiohttp
from common import API_KEY, POSTGRES, SECRET, free_port, token, use_uvloop, wait_http

from hubbub.apps.collab import protocol
from hubbub.testing.collab import YClient


class Editor(YClient):
    """An editor of the benchmark: its local changes wait for `flush`, and it knows when
    its text has reached `target` characters."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        super().__init__(ws)
        self.content = self.text("content")
        self.complete = asyncio.Event()
        self.target = -1
        self.messages = 0
        self._outbox: list[bytes] = []

    def _send_local(self, message: bytes) -> None:
        self._outbox.append(message)

    def _updated(self) -> None:
        self.messages += 1
        if len(self.content) == self.target:
            self.complete.set()

    async def flush(self) -> None:
        outbox, self._outbox = self._outbox, []
        for message in outbox:
            await self.ws.send_bytes(message)


def start_server(port: int, data_dir: str, database_url: str | None) -> subprocess.Popen[bytes]:
    args = [
        sys.executable, "-m", "hubbub", "serve", "--port", str(port), "--jwt-secret", SECRET,
        "--api-key", API_KEY, "--data-dir", data_dir, "--log-level", "warning",
    ]  # fmt: skip
    if database_url:
        args += ["--database-url", database_url]
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        args = ["taskset", "-c", "0", *args]
    return subprocess.Popen(args, start_new_session=True)


async def run(editors: int, edits: int, port: int) -> dict[str, Any]:
    url = f"ws://127.0.0.1:{port}/collab/bench-{secrets.token_hex(4)}"  # fresh in a shared db
    async with aiohttp.ClientSession() as http:
        sockets = [
            await http.ws_connect(f"{url}?token={token(f'e{i}')}", max_msg_size=0)
            for i in range(editors)
        ]
        clients = [Editor(ws) for ws in sockets]
        for client in clients:
            await client.ws.send_bytes(protocol.sync_step1(client.doc.get_state()))
        async with asyncio.timeout(30):
            await asyncio.gather(*(c.synced.wait() for c in clients))
        total = editors * edits
        for client in clients:
            client.target = total
        start = time.perf_counter()
        for n in range(edits):
            for client in clients:
                text = client.content
                text.insert((len(text) * (n % 7)) // 7, "x")
            await asyncio.gather(*(c.flush() for c in clients))
        async with asyncio.timeout(300):
            await asyncio.gather(*(c.complete.wait() for c in clients))
        elapsed = time.perf_counter() - start
        texts = {str(c.content) for c in clients}
        messages = sum(c.messages for c in clients)
        for client in clients:
            await client.ws.close()
            client.stop_reading()
    return {
        "editors": editors,
        "updates": total,
        "seconds": round(elapsed, 2),
        "applied_per_s": round(total / elapsed),
        "delivered_per_s": round(total * (editors - 1) / elapsed),
        "messages_per_s": round(messages / elapsed),
        "converged": len(texts) == 1,
    }


async def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--editors", type=int, default=50)
    parser.add_argument("--edits", type=int, default=200)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--out")
    args = parser.parse_args()
    if (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {1})
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="hubbub-bench-collab-") as data_dir:
        database_url = POSTGRES if args.database == "postgresql" else None
        server = start_server(port, data_dir, database_url)
        try:
            await wait_http(f"http://127.0.0.1:{port}/readyz")
            result = await run(args.editors, args.edits, port)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(10)
    result.update(database=args.database, machine=f"{platform.machine()}, {os.cpu_count()} cores")
    print(json.dumps(result))
    if args.out:
        result["out"] = args.out
    return result


if __name__ == "__main__":
    use_uvloop()
    found = asyncio.run(main())
    if "out" in found:
        with open(found.pop("out"), "w") as f:
            json.dump(found, f, indent=2)
