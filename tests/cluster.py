"""Hubbub nodes as separate `hubbub serve` processes sharing one Redis, for cluster tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp

from hubbub.core.auth import TokenVerifier
from tests.services import free_port

SECRET = "cluster-test-secret-0123456789abcdef0123456789"
API_KEY = "cluster-test-api-key"


@dataclass
class Node:
    """One `hubbub serve` process."""

    name: str
    port: int
    broker_url: str
    data_dir: str
    database_url: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    log: str = field(default="")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log = os.path.join(self.data_dir, f"{self.name}.log")
        args = [
            sys.executable, "-m", "hubbub", "serve", "--port", str(self.port),
            "--broker", self.broker_url, "--jwt-secret", SECRET, "--api-key", API_KEY,
            "--data-dir", self.data_dir, "--node-id", self.name, "--log-level", "warning",
        ]  # fmt: skip
        if self.database_url:
            args += ["--database-url", self.database_url]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=out, start_new_session=True)

    async def wait_ready(
        self, proc: asyncio.subprocess.Process | None = None, timeout: float = 20.0
    ) -> None:
        """Until `/readyz` answers 200; `proc` is a node the test started itself."""
        async with aiohttp.ClientSession() as http, asyncio.timeout(timeout):
            while True:
                if proc is not None:
                    assert proc.returncode is None, "the server exited"
                else:
                    assert self.proc is not None and self.proc.poll() is None, self.read_log()
                try:
                    async with http.get(self.http_url + "/readyz") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: the node dies at once, with no goodbye to clients or Redis."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()

    def read_log(self) -> str:
        try:
            with open(self.log) as f:
                return f.read()[-3000:]
        except OSError:
            return ""


verifier = TokenVerifier(secret=SECRET, api_key=API_KEY)


def token(user: str) -> str:
    return verifier.issue(user, ttl=3600)


@asynccontextmanager
async def cluster(
    broker_url: str, count: int = 3, database_url: str | None = None
) -> AsyncIterator[list[Node]]:
    """`count` nodes on free ports sharing `broker_url` (and a database), started and ready."""
    with tempfile.TemporaryDirectory(prefix="hubbub-cluster-") as data_dir:
        # Each node has a data directory of its own, as on separate hosts; they share the
        # broker and, when given, the database.
        nodes = []
        for i in range(count):
            node_dir = os.path.join(data_dir, f"n{i + 1}")
            os.makedirs(node_dir)
            nodes.append(Node(f"n{i + 1}", free_port(), broker_url, node_dir, database_url))
        try:
            for node in nodes:
                node.start()
            await asyncio.gather(*(node.wait_ready() for node in nodes))
            yield nodes
        finally:
            for node in nodes:
                node.stop()
