"""The demo site's files are served from the package, and nothing outside it is."""

from __future__ import annotations

import aiohttp

from hubbub.testing import running_server


async def test_index_demo_pages_and_the_sdk_are_served_and_paths_cannot_escape() -> None:
    async with running_server() as srv, aiohttp.ClientSession() as http:
        for path, kind, text in [
            ("/", "text/html", "The seven patterns"),
            ("/demo/dashboard", "text/html", "live server dashboard"),
            ("/demo/console.html", "text/html", "protocol console"),
            ("/static/hubbub.js", "text/javascript", "export class Client"),
            ("/static/hubbub.d.ts", "text/plain", "export class Client"),
        ]:
            async with http.get(srv.http_url + path) as r:
                assert r.status == 200, path
                assert r.content_type == kind, path
                assert text in await r.text(), path
        for path in ("/static/../transport/static.py", "/static/%2e%2e/cli.py", "/demo/nope"):
            async with http.get(srv.http_url + path) as r:
                assert r.status == 404, path
