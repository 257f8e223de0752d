"""Cluster fan-out: delivered events per second with 1, 2 and 3 nodes on one Redis,
and the Redis round trips each publication costs.

    python benchmarks/cluster.py [--nodes 1,2,3] [--subs 300] [--seconds 5] [--out FILE]

Each node is a `hubbub serve --broker redis://...` process; a private redis-server
runs on a free port. Subscribers are spread evenly over the nodes, and so are the
publishers (six by default); each keeps at most `--window` publications unanswered.
The load generator is this process (aiohttp on uvloop). On a 2-core machine the
nodes, Redis and the load generator share the cores, so the figures show the cost
of the cluster path, not its capacity on real hardware.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from common import API_KEY, SECRET, free_port, token, use_uvloop, wait_http


async def redis_counts(url: str) -> tuple[int, int]:
    """(requests the nodes sent: scripts plus plain commands, commands Redis ran in all)."""
    client = aioredis.Redis.from_url(url)
    stats = await client.info("commandstats")
    await client.aclose()
    total = sum(int(v["calls"]) for v in stats.values())
    inner = ("hincrby", "hget", "hset", "xadd", "pexpire", "expire", "spublish", "xrange")
    scripts = int(stats.get("cmdstat_evalsha", {}).get("calls", 0))
    # Commands run inside a script are counted too; leave them out of the round trips.
    plain = total - scripts - sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in inner)
    return scripts + plain, total


def start_redis(port: int, workdir: str) -> subprocess.Popen[bytes]:
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", workdir]  # fmt: skip
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_node(i: int, port: int, redis_url: str, workdir: str) -> subprocess.Popen[bytes]:
    args = [
        sys.executable, "-m", "hubbub", "serve", "--port", str(port),
        "--broker", redis_url, "--jwt-secret", SECRET, "--api-key", API_KEY,
        "--data-dir", os.path.join(workdir, f"n{i}"), "--node-id", f"n{i}",
        "--log-level", "warning",
    ]  # fmt: skip
    return subprocess.Popen(args, start_new_session=True, stdout=subprocess.DEVNULL)


async def run(
    nodes: int, subs: int, seconds: float, window: int, publishers: int, workdir: str
) -> dict[str, Any]:
    redis_port = free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    redis_proc = start_redis(redis_port, workdir)
    procs: list[subprocess.Popen[bytes]] = []
    ports = [free_port() for _ in range(nodes)]
    try:
        for i, port in enumerate(ports):
            procs.append(start_node(i, port, redis_url, workdir))
        await asyncio.gather(*(wait_http(f"http://127.0.0.1:{p}/readyz") for p in ports))
        return await measure(ports, redis_url, subs, seconds, window, publishers)
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(10)
        redis_proc.kill()
        redis_proc.wait()


async def measure(
    ports: list[int], redis_url: str, subs: int, seconds: float, window: int, publishers: int
) -> dict[str, Any]:
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    received = 0
    sockets = []
    for i in range(subs):
        port = ports[i % len(ports)]
        ws = await http.ws_connect(f"ws://127.0.0.1:{port}/ws?token={token(f's{i}')}")
        await ws.send_str(
            json.dumps({"type": "subscribe", "id": "s", "payload": {"channels": ["bench"]}})
        )
        while json.loads((await ws.receive()).data).get("re") != "s":
            pass
        sockets.append(ws)

    async def reader(ws: aiohttp.ClientWebSocketResponse) -> None:
        nonlocal received
        async for msg in ws:
            if msg.data.startswith('{"type":"message"'):
                received += 1

    readers = [asyncio.create_task(reader(ws)) for ws in sockets]
    pubs = [
        await http.ws_connect(f"ws://127.0.0.1:{ports[j % len(ports)]}/ws?token={token(f'p{j}')}")
        for j in range(publishers)
    ]
    for pub in pubs:
        await pub.receive()  # welcome
    inflight = asyncio.Semaphore(window)
    published = 0
    stop = False

    async def answers(pub: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in pub:
            if msg.data.startswith('{"type":"published"'):
                inflight.release()

    answer_tasks = [asyncio.create_task(answers(p)) for p in pubs]
    body = "x" * 60

    async def publisher() -> None:
        nonlocal published
        n = 0
        while not stop:
            await inflight.acquire()
            frame = {"type": "publish", "id": str(n),
                     "payload": {"channel": "bench", "data": {"n": n, "pad": body}}}  # fmt: skip
            await pubs[n % len(pubs)].send_str(json.dumps(frame))
            n += 1
            published = n

    task = asyncio.create_task(publisher())
    await asyncio.sleep(1.0)  # warm-up
    (q0, c0), r0, p0, t0 = await redis_counts(redis_url), received, published, time.perf_counter()
    await asyncio.sleep(seconds)
    (q1, c1), r1, p1, t1 = await redis_counts(redis_url), received, published, time.perf_counter()
    stop = True
    task.cancel()
    for t in readers + answer_tasks:
        t.cancel()
    await http.close()
    pubs_done = max(1, p1 - p0)
    return {
        "nodes": len(ports),
        "subscribers": subs,
        "publishers": publishers,
        "deliveries_per_s": round((r1 - r0) / (t1 - t0)),
        "publications_per_s": round((p1 - p0) / (t1 - t0)),
        # Requests the nodes made to Redis per publication during the window (the
        # publish script, plus heartbeats and INFO, a few per second in all) ...
        "redis_round_trips_per_publication": round((q1 - q0) / pubs_done, 3),
        # ... and the commands Redis ran for them, those inside the script included.
        "redis_commands_per_publication": round((c1 - c0) / pubs_done, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", default="1,2,3")
    parser.add_argument("--subs", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--publishers", type=int, default=6, help="spread over the nodes")
    parser.add_argument("--out")
    args = parser.parse_args()
    assert shutil.which("redis-server"), "redis-server is needed"
    use_uvloop()
    results = []
    for count in (int(n) for n in args.nodes.split(",")):
        with tempfile.TemporaryDirectory(prefix="hubbub-bench-cluster-") as workdir:
            result = asyncio.run(
                run(count, args.subs, args.seconds, args.window, args.publishers, workdir)
            )
        print(json.dumps(result), flush=True)
        results.append(result)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"scenario": "cluster_fanout", "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
