"""`/collab/{name}` also works when Hubbub is mounted inside an ASGI application."""

from __future__ import annotations

from pathlib import Path

from hubbub.testing.collab import yclient
from tests.integration.test_asgi import serve_starlette
from tests.wsclient import wait_until


async def test_two_yjs_clients_converge_through_the_mounted_hub(tmp_path: Path) -> None:
    async with serve_starlette(str(tmp_path)) as (port, hubbub_app):
        base = f"http://127.0.0.1:{port}/hub"
        token = hubbub_app.hub.verifier.issue
        async with (
            yclient(base, "mounted", token("ann")) as ann,
            yclient(base, "mounted", token("bob")) as bob,
        ):
            ann.text().insert(0, "through ASGI")
            await wait_until(lambda: str(bob.text()) == "through ASGI")
