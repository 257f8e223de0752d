"""Chat throughput: messages per second stored (acknowledged) and delivered, on SQLite and
on PostgreSQL, with full chat semantics (membership check, idempotent insert, full-text
index, fan-out to every member's `user:` channel).

    python benchmarks/chat.py [--database sqlite,postgresql] [--conversations 20]
                              [--members 5] [--messages 4000] [--window 4] [--out FILE]

The server is one `hubbub serve` process, pinned to CPU 0 when the machine has two
cores and `taskset`; this process is the load generator (aiohttp on uvloop), pinned
to CPU 1. Every member of each conversation holds one connection; one member of each
conversation sends, keeping at most `--window` messages unacknowledged. A message is
*stored* when its `chat.message_delivered` arrives, *delivered* when `chat.new_message`
reached every member (the sender included). SQLite commits with `synchronous=FULL`
(an fsync per message); PostgreSQL is the local server, in a database made for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

import aiohttp
from common import API_KEY, POSTGRES, SECRET, free_port, pin_apart, token, use_uvloop, wait_http

SIZES = {
    "tiny": {"conversations": 2, "members": 3, "messages": 60, "window": 2},
    "medium": {"conversations": 20, "members": 5, "messages": 4000, "window": 4},
}


def pinned(cmd: list[str], cpu: str | None) -> list[str]:
    return ["taskset", "-c", cpu, *cmd] if cpu is not None else cmd


def start_server(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, start_new_session=True, stdout=subprocess.DEVNULL)


async def postgres_database() -> tuple[str, str]:
    """A new database on the local PostgreSQL: (its URL, its name)."""
    import asyncpg

    name = f"hubbub_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(POSTGRES, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return POSTGRES.rsplit("/", 1)[0] + "/" + name, name


async def drop_database(name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(POSTGRES, timeout=5)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def run(database: str, p: dict[str, int], cpu: str | None, workdir: str) -> dict[str, Any]:
    port = free_port()
    args = [
        sys.executable, "-m", "hubbub", "serve", "--port", str(port), "--jwt-secret", SECRET,
        "--api-key", API_KEY, "--data-dir", workdir, "--log-level", "warning",
    ]  # fmt: skip
    dropped = None
    if database == "postgresql":
        url, dropped = await postgres_database()
        args += ["--database-url", url]
    proc = start_server(pinned(args, cpu))
    try:
        await wait_http(f"http://127.0.0.1:{port}/readyz", alive=lambda: proc.poll() is None)
        result = await measure(port, p)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
        if dropped is not None:
            await drop_database(dropped)
    return {"database": database, **p, **result}


async def measure(port: int, p: dict[str, int]) -> dict[str, Any]:
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {API_KEY}"}
    conversations: list[tuple[str, list[str]]] = []
    for c in range(p["conversations"]):
        members = [f"u{c}_{m}" for m in range(p["members"])]
        async with http.post(
            base + "/api/conversations", json={"members": members, "title": f"c{c}"}, headers=auth
        ) as r:
            assert r.status == 201, await r.text()
            conversations.append(((await r.json())["conversationId"], members))

    expected = p["messages"] // p["conversations"]
    total = expected * p["conversations"]
    delivered = 0
    all_delivered = asyncio.Event()
    sockets: dict[str, aiohttp.ClientWebSocketResponse] = {}
    for _, members in conversations:
        for user in members:
            ws = await http.ws_connect(f"ws://127.0.0.1:{port}/ws?token={token(user)}")
            await ws.receive()  # welcome
            sockets[user] = ws

    acked_at: dict[str, float] = {}
    sent_at: dict[str, float] = {}
    windows = {cid: asyncio.Semaphore(p["window"]) for cid, _ in conversations}
    deliveries_wanted = total * p["members"]

    async def reader(ws: aiohttp.ClientWebSocketResponse, cid: str | None) -> None:
        nonlocal delivered
        async for msg in ws:
            frame = json.loads(msg.data)
            kind = frame["type"]
            if kind == "chat.new_message":
                delivered += 1
                if delivered == deliveries_wanted:
                    all_delivered.set()
            elif kind == "chat.message_delivered":
                acked_at[frame["re"]] = time.perf_counter()
                assert cid is not None
                windows[cid].release()
            elif kind == "error":
                raise RuntimeError(frame)

    senders = {members[0]: cid for cid, members in conversations}
    readers = [asyncio.create_task(reader(ws, senders.get(u))) for u, ws in sockets.items()]

    async def sender(cid: str, user: str) -> None:
        ws = sockets[user]
        for n in range(expected):
            await windows[cid].acquire()
            rid = f"{cid}-{n}"
            sent_at[rid] = time.perf_counter()
            payload = {"conversationId": cid, "clientMessageId": rid, "content": f"message {n}"}
            await ws.send_str(
                json.dumps({"type": "chat.send_message", "id": rid, "payload": payload})
            )

    start = time.perf_counter()
    await asyncio.gather(*(sender(cid, members[0]) for cid, members in conversations))
    await asyncio.wait_for(all_delivered.wait(), timeout=300)
    end = time.perf_counter()
    for task in readers:
        task.cancel()
    await http.close()
    last_ack = max(acked_at.values())
    latencies = sorted((acked_at[r] - sent_at[r]) * 1000 for r in acked_at)
    return {
        "stored": len(acked_at),
        "delivered": delivered,
        "stored_per_s": round(len(acked_at) / (last_ack - start)),
        "delivered_per_s": round(delivered / (end - start)),
        "ack_ms_p50": round(latencies[len(latencies) // 2], 2),
        "ack_ms_p99": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="medium")
    parser.add_argument("--database", default="sqlite,postgresql")
    for name in ("conversations", "members", "messages", "window"):
        parser.add_argument(f"--{name}", type=int)
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args()
    p = dict(SIZES[args.size])
    p.update({k: v for k in p if (v := getattr(args, k)) is not None})
    cpu = None if args.no_pin else pin_apart()
    use_uvloop()
    results = []
    for database in args.database.split(","):
        with tempfile.TemporaryDirectory(prefix="hubbub-bench-chat-") as workdir:
            result = asyncio.run(run(database, p, cpu, workdir))
        result["pinned"] = cpu is not None
        print(json.dumps(result), flush=True)
        results.append(result)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"scenario": "chat", "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
