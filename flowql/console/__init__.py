"""The console at `/`: a browser client of flowql's own GraphQL, served as plain files.

`/` answers `static/index.html`; `/console/<file>` answers the other files of `static/` (ES
modules, CSS, the icon), each with its content type. Nothing else is served: an unknown or
out-of-tree path is 404. Every answer carries a strict Content-Security-Policy: scripts, styles,
images and connections from this origin only, no inline script or style, no frames, no plugins.
The page keeps its tokens in memory; see docs/console.md.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

STATIC = Path(__file__).resolve().parent / "static"
PREFIX = "/console/"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


@cache
def files() -> dict[str, Path]:
    """Relative path (`app.js`, `vendor/x.js`) -> file: the only paths served."""
    return {
        path.relative_to(STATIC).as_posix(): path
        for path in STATIC.rglob("*")
        if path.is_file() and path.suffix in TYPES
    }


def _file(path: str) -> Response:
    found = files().get(path)
    if found is None:
        return Response("Not Found", status_code=404, media_type="text/plain", headers=HEADERS)
    return FileResponse(found, media_type=TYPES[found.suffix], headers=HEADERS)


async def index(request: Request) -> Response:
    return _file("index.html")


async def asset(request: Request) -> Response:
    path: str = request.path_params["path"]
    return _file(path)


def routes() -> list[Route]:
    return [
        Route("/", index, methods=["GET", "HEAD"]),
        Route(PREFIX + "{path:path}", asset, methods=["GET", "HEAD"]),
    ]
