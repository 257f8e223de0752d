"""Run a real Hubbub server on a free loopback port inside a test."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import msgspec

from hubbub.clock import Clock
from hubbub.config import Settings
from hubbub.core.hub import Hub
from hubbub.node import build_hub
from hubbub.transport.server import HubServer


@dataclass
class RunningServer:
    """A server started by `running_server`: where it listens and how to get in."""

    hub: Hub
    server: HubServer
    port: int

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_key(self) -> str:
        return self.hub.settings.api_key or ""

    def token(self, user_id: str, *, ttl: float = 3600.0, **claims: Any) -> str:
        """A valid user token for `user_id` with extra `claims`."""
        return self.hub.verifier.issue(user_id, ttl=ttl, **claims)


@asynccontextmanager
async def running_server(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    setup: Callable[[Hub], None] | None = None,
) -> AsyncIterator[RunningServer]:
    """Start a node on 127.0.0.1 and a free port, with its own data directory.

    `setup` gets the hub before the server starts: the place for what is routed at
    start, such as `Hub.socket_endpoint`."""
    with tempfile.TemporaryDirectory(prefix="hubbub-test-") as data_dir:
        base = settings or Settings()
        base = msgspec.structs.replace(base, host="127.0.0.1", port=0, data_dir=data_dir)
        hub = build_hub(base, clock=clock)
        if setup is not None:
            setup(hub)
        server = HubServer(hub)
        port = await server.start("127.0.0.1", 0)
        try:
            yield RunningServer(hub=hub, server=server, port=port)
        finally:
            await server.stop()
