"""The demo site: `/` (the index of patterns), `/demo/<page>` and `/static/<file>`.

The files ship inside the package, in `hubbub/web/`; `/static/hubbub.js` is the browser SDK.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".ts": "text/plain",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


def _file_response(name: str) -> web.StreamResponse:
    """The file `name` under the web directory, or 404 for anything outside it or missing."""
    path = (WEB_DIR / name).resolve()
    if not path.is_relative_to(WEB_DIR) or not path.is_file():
        raise web.HTTPNotFound()
    content_type = CONTENT_TYPES.get(path.suffix, "application/octet-stream")
    return web.FileResponse(
        path, headers={"Content-Type": content_type, "Cache-Control": "no-cache"}
    )


async def index(request: web.Request) -> web.StreamResponse:
    return _file_response("index.html")


async def demo_page(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    return _file_response(name if "." in name else f"{name}.html")


async def static_file(request: web.Request) -> web.StreamResponse:
    return _file_response(request.match_info["path"])


def add_routes(app: web.Application) -> None:
    """Serve the demo site on `app`: `/`, `/demo/{name}` and `/static/{path}`."""
    app.router.add_get("/", index)
    app.router.add_get("/demo/{name}", demo_page)
    app.router.add_get("/static/{path:.+}", static_file)
