"""What the stand-alone benchmark scripts (cluster.py, chat.py, collab.py) share: the
secrets their servers start with, free ports, tokens, waiting for a server, pinning."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import time

import aiohttp
import jwt

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
API_KEY = "bench-api-key"
POSTGRES = os.environ.get("HUBBUB_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def token(user: str) -> str:
    """A user token the benchmark servers accept (they run with `SECRET`)."""
    return jwt.encode({"sub": user, "exp": int(time.time()) + 3600}, SECRET, "HS256")


async def wait_http(url: str, timeout: float = 30.0, alive: object = None) -> None:
    """Until `url` answers 200; `alive()` (if given) must stay true meanwhile."""
    async with aiohttp.ClientSession() as http, asyncio.timeout(timeout):
        while True:
            if callable(alive):
                assert alive(), "the server exited"
            try:
                async with http.get(url) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)


def pin_apart() -> str | None:
    """Pin this process (the load generator) to CPU 1 and return "0" for the server, when
    the machine has two cores and `taskset`; None otherwise."""
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        os.sched_setaffinity(0, {1})
        return "0"
    return None


def use_uvloop() -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
